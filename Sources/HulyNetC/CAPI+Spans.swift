import CHulyNet
import HulyNet
import HulyNetSync
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Spans (hulynet_set_span_handler)

/// The C span handler: `CallbackTracer`'s sink queues finished spans (on the thread that ends
/// them: often an I/O thread, which must not wait for C), and one job at a time on the callback
/// pool hands them to the handler in order. The queue is bounded: past it spans are dropped and
/// counted, so a slow handler costs spans, never the network's progress or unbounded memory.
enum CSpanSink {
    struct Target: CHandler, @unchecked Sendable {
        let fn: hulynet_span_fn
        let user: UnsafeMutableRawPointer?
        let destroy: hulynet_destroy_fn?
        func destroyed() { if let destroy { CallbackThread.run { destroy(user) } } }
    }

    static let capacity = 4096

    static let slot = CallbackSlot<Target>()
    /// Read at every span start (CallbackTracer's isEnabled) and end: one relaxed load.
    static let hasHandler = Atomic<Bool>(false)
    static let dropped = Atomic<UInt64>(0)

    private static let lock = Monitor() // signalled when a drain ends (the queue is empty)
    nonisolated(unsafe) private static var queue = FIFO<FinishedSpan>() // under lock
    nonisolated(unsafe) private static var draining = false // under lock
    nonisolated(unsafe) private static var installed = false // under lock: a handler was set once

    static let tracer = CallbackTracer(isEnabled: { hasHandler.load(ordering: .relaxed) }, sink: enqueue)

    /// Installs `new` (nil removes the handler: outside a callback, once the spans queued before
    /// it are delivered). False, with nothing changed, when the process has a tracer of its own.
    static func set(_ new: Target?) -> Bool {
        if new != nil {
            let live = Handles.count
            guard CallbackTracerBootstrap.bootstrapOnce({ tracer }) else { return false }
            let first = lock.withLock { () -> Bool in
                defer { installed = true }
                return !installed
            }
            // The quiet trap of this API: objects made earlier never trace. Said once, in the log.
            if first, live > 0 {
                CLogSink.logger("hulynet.tracing").warning(
                    "\(live) handle(s) were made before the first span handler: their servers and clients do not trace (make them after it)")
            }
        }
        // Spans are queued only while a handler is there to take them.
        if new == nil {
            hasHandler.store(false, ordering: .relaxed)
            // A host that removes its handler as it exits gets the spans that ended before (as an
            // SDK's shutdown flushes). Inside a callback that could wait for itself: dropped.
            if CallbackThread.isInside {
                lock.withLock { while queue.pop() != nil {} }
            } else {
                lock.withLock { while draining { lock.wait() } }
            }
        }
        slot.set(new)
        if new != nil { hasHandler.store(true, ordering: .relaxed) }
        return true
    }

    /// The tracer's sink: any thread, never blocks on C.
    @Sendable static func enqueue(_ span: FinishedSpan) {
        guard hasHandler.load(ordering: .relaxed) else { return }
        let start = lock.withLock { () -> Bool? in
            guard queue.count < capacity else { return nil }
            queue.push(span)
            if draining { return false }
            draining = true
            return true
        }
        switch start {
        case nil: dropped.add(1, ordering: .relaxed)
        case true?: CallbackPool.shared.submit { drain() }
        case false?: break
        }
    }

    /// Delivers a bounded batch, then gives the thread back (as CallbackLane does).
    private static func drain() {
        for _ in 0..<64 {
            let next = lock.withLock { () -> FinishedSpan? in
                guard let span = queue.pop() else {
                    draining = false
                    lock.broadcast()
                    return nil
                }
                return span
            }
            guard let next else { return }
            slot.call { target in
                withCSpan(next) { span in CallbackThread.run { target.fn(target.user, span) } }
            }
        }
        CallbackPool.shared.submit { drain() }
    }

    /// The span as a `hulynet_span`, valid during `body`: every string in one buffer.
    static func withCSpan<Result>(_ span: FinishedSpan, _ body: (UnsafePointer<hulynet_span>) -> Result) -> Result {
        var text: [UInt8] = []
        text.reserveCapacity(256)
        func add(_ string: String) -> Int {
            let offset = text.count
            text.append(contentsOf: string.utf8)
            text.append(0)
            return offset
        }
        let name = add(span.name)
        let traceID = add(span.context.traceID.description)
        let spanID = add(span.context.spanID.description)
        let parentID = add(span.parentSpanID?.description ?? "")
        let message = add(span.statusMessage)
        let keys = span.attributes.map { add($0.key) }
        let strings = span.attributes.map { attribute -> Int in
            if case .string(let value) = attribute.value { return add(value) }
            return -1
        }
        return text.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let attributes = span.attributes.indices.map { index -> hulynet_span_attribute in
                var item = hulynet_span_attribute()
                item.key = base + keys[index]
                switch span.attributes[index].value {
                case .string: item.type = HULYNET_SPAN_ATTR_STRING; item.string_value = base + strings[index]
                case .int(let value): item.type = HULYNET_SPAN_ATTR_INT; item.int_value = value
                case .double(let value): item.type = HULYNET_SPAN_ATTR_DOUBLE; item.double_value = value
                case .bool(let value): item.type = HULYNET_SPAN_ATTR_BOOL; item.bool_value = value ? 1 : 0
                }
                return item
            }
            return attributes.withUnsafeBufferPointer { items in
                var record = hulynet_span()
                record.size = StructLayout.tag | UInt64(MemoryLayout<hulynet_span>.size)
                record.name = base + name
                record.trace_id = base + traceID
                record.span_id = base + spanID
                record.parent_span_id = base + parentID
                record.start_ns = Int64(clamping: span.startNs)
                record.end_ns = Int64(clamping: span.endNs)
                record.kind = span.kind.rawValue
                record.status = span.status.rawValue
                record.parent_is_remote = span.parentIsRemote ? 1 : 0
                record.status_message = base + message
                record.attributes = items.baseAddress
                record.attribute_count = items.count
                return withUnsafePointer(to: &record) { body($0) }
            }
        }
    }
}

@_cdecl("hulynet_set_span_handler")
public func hulynet_set_span_handler(_ fn: hulynet_span_fn?, _ user: UnsafeMutableRawPointer?,
                                     _ destroy: hulynet_destroy_fn?) -> Int32 {
    cCall {
        guard CSpanSink.set(fn.map { CSpanSink.Target(fn: $0, user: user, destroy: destroy) }) else {
            throw CFailure.invalid("the process bootstrapped a tracer of its own (InstrumentationSystem.bootstrap): spans go to it")
        }
    }
}

@_cdecl("hulynet_spans_dropped")
public func hulynet_spans_dropped() -> UInt64 {
    CSpanSink.dropped.load(ordering: .relaxed)
}
