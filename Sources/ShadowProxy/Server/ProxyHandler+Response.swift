import Metrics
import NIOCore
import NIOHTTP1
import ShadowCore
import Synchronization

extension ProxyHandler {
    // MARK: - The baseline's response

    func upstreamHead(_ head: HTTPResponseHead) {
        guard let context = self.context, case .forwarding = self.state else { return }
        if head.status.code >= 500, self.canFallBack {
            self.fallBack(status: Int(head.status.code), error: nil)
            return
        }
        self.current.responseStarted = true
        self.loopContext.shared.statistics.baselineConnectFailuresInARow.store(0, ordering: .relaxed)
        self.current.answer.head(head)
        var headers = Self.forwardableResponseHeaders(head.headers)
        if !self.current.keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        if self.current.serving != nil { self.experimentHeaders(&headers) }
        let response = HTTPResponseHead(version: self.current.clientVersion, status: head.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(response)), promise: nil)
        self.current.routeMetrics?.countResponse(status: Int(head.status.code))
        // From now on the timeout bounds silence between body chunks, not the whole body.
        self.armBaselineTimer()
    }

    func upstreamBody(_ buffer: ByteBuffer) {
        guard let context = self.context, case .forwarding = self.state else { return }
        self.armBaselineTimer()
        // Chunk arrival times let the writer time streamed events (first token).
        self.current.answer.body(buffer, timed: self.current.record != nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if !context.channel.isWritable {
            // The client reads slower than the baseline sends: stop reading upstream until it
            // catches up. Pause before flushing: the flush may make the channel writable again,
            // and that event must find the upstream already paused.
            self.current.call?.pauseReading()
            context.flush()
        }
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.current.call?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func upstreamEnd(trailers: HTTPHeaders?) {
        self.current.answer.trailers(trailers)
        self.finishBaseline(error: nil)
        guard let context = self.context, case .forwarding = self.state else { return }
        self.finishResponse(context: context, close: !self.current.keepAlive, trailers: trailers)
    }

    func upstreamFailed(_ error: ArmError) {
        if error != .clientClosed, case .forwarding = self.state, self.canFallBack {
            self.fallBack(status: nil, error: error)
            return
        }
        let detail = self.current.call?.failureDetail
        let servedByTreatment = self.current.serving?.treatmentIndex != nil
        self.finishBaseline(error: error)
        if error != .clientClosed, !servedByTreatment { self.loopContext.shared.statistics.baselineFailures.add(1, ordering: .relaxed) }
        if !servedByTreatment, error == .refused || error == .connectTimeout || error == .dns || error == .tls {
            self.loopContext.shared.statistics.baselineConnectFailuresInARow.add(1, ordering: .relaxed)
        }
        guard let context = self.context, case .forwarding = self.state else { return }
        if self.current.responseStarted {
            // Part of the answer is already on the wire; the only honest signal left is to close.
            self.state = .closed
            context.flush()
            context.close(promise: nil)
        } else {
            self.respond(SidecarError.baselineFailed(error, detail: detail), close: self.current.upload != nil)
        }
    }

    func finishBaseline(error: ArmError?) {
        self.current.call = nil
        self.disarmBaselineTimer()
        self.current.serving?.fallbackRequest = nil
        let latency = self.current.answer.elapsedMicros
        if error == nil {
            let timer =
                self.current.serving?.treatmentIndex.flatMap { index in self.current.route?.metrics.targets[index] }
                ?? self.current.routeMetrics?.baseline
            timer?.recordNanoseconds(latency * 1000)
        }
        guard let exchange = self.current.record else { return }
        self.current.record = nil
        let result = self.current.answer.finish(error: error)
        if self.current.serving?.exposure.fallback == true {
            exchange.finished(.baseline, result)
        } else {
            exchange.servedFinished(result)
        }
    }
}
