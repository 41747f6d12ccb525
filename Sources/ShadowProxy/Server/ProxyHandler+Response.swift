import Metrics
import NIOCore
import NIOHTTP1
import ShadowCore
import ShadowStore
import Synchronization

extension ProxyHandler {
    // MARK: - The baseline's response

    func upstreamHead(_ head: HTTPResponseHead) {
        guard let context = self.context, case .forwarding = self.state else { return }
        if head.status.code >= 500, self.canFallBack {
            self.fallBack(status: Int(head.status.code), error: nil)
            return
        }
        self.responseStarted = true
        self.loopContext.shared.statistics.baselineConnectFailuresInARow.store(0, ordering: .relaxed)
        self.answer.head(head)
        var headers = Self.forwardableResponseHeaders(head.headers)
        if !self.keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        if self.serving != nil { self.experimentHeaders(&headers) }
        let response = HTTPResponseHead(version: self.clientVersion, status: head.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(response)), promise: nil)
        self.routeMetrics?.countResponse(status: Int(head.status.code))
        // From now on the timeout bounds silence between body chunks, not the whole body.
        self.armBaselineTimer()
    }

    func upstreamBody(_ buffer: ByteBuffer) {
        guard let context = self.context, case .forwarding = self.state else { return }
        self.armBaselineTimer()
        // Chunk arrival times let the writer time streamed events (first token).
        self.answer.body(buffer, timed: self.exchange != nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if !context.channel.isWritable {
            // The client reads slower than the baseline sends: stop reading upstream until it
            // catches up. Pause before flushing: the flush may make the channel writable again,
            // and that event must find the upstream already paused.
            self.call?.pauseReading()
            context.flush()
        }
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.call?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func upstreamEnd(trailers: HTTPHeaders?) {
        self.answer.trailers(trailers)
        self.finishBaseline(error: nil)
        guard let context = self.context, case .forwarding = self.state else { return }
        self.finishResponse(context: context, close: !self.keepAlive, trailers: trailers)
    }

    func upstreamFailed(_ error: ArmError) {
        if error != .clientClosed, case .forwarding = self.state, self.canFallBack {
            self.fallBack(status: nil, error: error)
            return
        }
        let detail = self.call?.failureDetail
        let servedByTreatment = self.serving?.treatmentIndex != nil
        self.finishBaseline(error: error)
        if error != .clientClosed, !servedByTreatment { self.loopContext.shared.statistics.baselineFailures.add(1, ordering: .relaxed) }
        if !servedByTreatment, error == .refused || error == .connectTimeout || error == .dns || error == .tls {
            self.loopContext.shared.statistics.baselineConnectFailuresInARow.add(1, ordering: .relaxed)
        }
        guard let context = self.context, case .forwarding = self.state else { return }
        if self.responseStarted {
            // Part of the answer is already on the wire; the only honest signal left is to close.
            self.state = .closed
            context.flush()
            context.close(promise: nil)
        } else {
            self.respond(SidecarError.baselineFailed(error, detail: detail), close: self.upload != nil)
        }
    }

    func finishBaseline(error: ArmError?) {
        self.call = nil
        self.disarmBaselineTimer()
        self.serving?.fallbackRequest = nil
        let latency = self.answer.elapsedMicros
        if error == nil {
            let timer = self.serving?.treatmentIndex.flatMap { index in self.route?.metrics.targets[index] } ?? self.routeMetrics?.baseline
            timer?.recordNanoseconds(latency * 1000)
        }
        guard let exchange = self.exchange else { return }
        self.exchange = nil
        let result = self.answer.finish(error: error)
        if self.serving?.exposure.fallback == true {
            exchange.finished(.baseline, result)
        } else {
            exchange.servedFinished(result)
        }
    }
}
