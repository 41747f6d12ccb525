import NIOCore
import NIOHTTP2
import ShadowCore
import Synchronization

/// HTTP/2 upstreams (`h2c://`, and gRPC calls to `https://`): calls become streams on a few
/// multiplexed connections instead of taking keep-alive connections of their own.
extension UpstreamPool {
    /// A stream on one of the upstream's HTTP/2 connections (`h2c://`, or `https://` with `h2`
    /// agreed by ALPN): the first with room for it, or a new one while the upstream's stream
    /// limit is reached on every one. Calls wait only for a connect.
    func executeOnStream(_ call: UpstreamCall, connectTimeout: TimeAmount) {
        self.http2ConnectTimeout = connectTimeout
        self.http2Waiting.append(call)
        self.dispatchStreams()
    }

    /// A stream closed: a call waiting for a connect may fit on an existing connection now.
    func streamClosed() {
        if !self.http2Waiting.isEmpty { self.dispatchStreams() }
    }

    /// Gives waiting calls streams on connections with room, and connects another connection
    /// for the rest.
    private func dispatchStreams() {
        self.http2.removeAll { !$0.isUsable }
        // A connection opened for a burst closes once it has been idle for the idle timeout;
        // the first stays.
        let now = NIODeadline.now()
        for connection in self.http2.dropFirst() where connection.openStreams == 0 && now - connection.idleSince > self.maxIdleTime {
            connection.retire()
        }
        self.http2.removeAll { !$0.isUsable }
        while let call = self.http2Waiting.first {
            if call.finished {
                self.http2Waiting.removeFirst()
                continue
            }
            guard let connection = self.http2.first(where: \.hasRoom) else { break }
            self.http2Waiting.removeFirst()
            connection.open(call, pool: self, generation: self.generation)
        }
        guard !self.http2Waiting.isEmpty, !self.http2Connecting else { return }
        if self.http2.count >= Self.maxHTTP2Connections, let least = self.http2.min(by: { $0.openStreams < $1.openStreams }) {
            for call in self.http2Waiting where !call.finished { least.open(call, pool: self, generation: self.generation) }
            self.http2Waiting = []
            return
        }
        if let until = self.refusedUntil, now < until {
            let waiting = self.http2Waiting
            self.http2Waiting = []
            for call in waiting { _ = self.failsWhileRefused(call, now: now) }
            return
        }
        self.http2Connecting = true
        let generation = self.generation
        let endpoint = self.endpoint
        self.connect(endpoint, http2: true, deadline: now + self.http2ConnectTimeout).assumeIsolated().whenComplete { result in
            self.http2Connecting = false
            switch result {
            case .success(let channel):
                let pipeline = channel.pipeline.syncOperations
                guard let handler = try? pipeline.handler(type: NIOHTTP2Handler.self), let multiplexer = try? handler.syncMultiplexer(),
                    let watcher = try? pipeline.handler(type: HTTP2ConnectionWatcher.self)
                else {
                    channel.close(promise: nil)
                    self.failWaitingStreams(.reset, detail: nil)
                    return
                }
                self.connectSucceeded()
                if endpoint.tls != nil { self.statistics.tlsHandshakes.add(1, ordering: .relaxed) }
                let connection = HTTP2UpstreamConnection(channel: channel, multiplexer: multiplexer, secure: endpoint.tls != nil)
                connection.maxStreams = watcher.maxStreams ?? Int.max
                watcher.onGoAway = { [weak connection] in connection?.markGoingAway() }
                watcher.onMaxStreams = { [weak connection] in connection?.maxStreams = $0 }
                // A retired connection is not closed here: the streams the upstream accepted
                // before its GOAWAY finish on it, and the upstream closes it.
                if generation == self.generation { self.http2.append(connection) } else { connection.retire() }
                self.dispatchStreams()
            case .failure(let error):
                let failure = self.connectFailed(error)
                self.failWaitingStreams(failure.kind, detail: failure.detail)
            }
        }
    }

    private func failWaitingStreams(_ error: ArmError, detail: String?) {
        let waiting = self.http2Waiting
        self.http2Waiting = []
        for call in waiting { call.fail(error, detail: detail) }
    }
}
