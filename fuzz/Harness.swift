// The libFuzzer entry point of the hulynet fuzz harness (built by scripts/fuzz.sh together with
// the HulyNetCore sources, so internal API is reachable). One binary holds every target; the
// environment variable HULYNET_FUZZ_TARGET picks the one a run exercises.
#if canImport(Glibc)
import Glibc
#endif

/// Every target by name: each takes one input and traps (through `check`) when a property fails.
let fuzzTargets: [String: (UnsafeBufferPointer<UInt8>) -> Void] = [
    "json-parse": fuzzJSONParse,
    "json-scan": fuzzJSONScan,
    "client-frames": fuzzClientFrames,
    "server-frames": fuzzServerFrames,
]

/// The target of this run, chosen once.
let selectedTarget: (UnsafeBufferPointer<UInt8>) -> Void = {
    let name = getenv("HULYNET_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = fuzzTargets[name] else {
        let known = fuzzTargets.keys.sorted().joined(separator: ", ")
        fatalError("set HULYNET_FUZZ_TARGET to one of: \(known) (got \"\(name)\")")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selectedTarget(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// A property every input must keep; a violation traps, so libFuzzer saves the input as a crash.
@inline(__always)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
           file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError("property violated: \(message())", file: file, line: line) }
}
