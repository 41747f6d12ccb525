#if FUZZING
import ShadowCore

#if canImport(Glibc)
import Glibc
#endif

/// The harness chosen by `SHADOWD_FUZZ` (json or config), read once.
private let harness: Harness = {
    guard let name = getenv("SHADOWD_FUZZ").map({ String(cString: $0) }), let harness = Harness(rawValue: name) else {
        fatalError("set SHADOWD_FUZZ to one of: \(Harness.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return harness
}()

/// libFuzzer's entry point: one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    harness.run(UnsafeBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The program's entry: SwiftPM links executables with `main` aliased to `<module>_main`, so
/// libFuzzer's own `main` is never used; this hands control to its driver instead.
@_cdecl("shadowd_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#else
import Foundation

/// Without the fuzzer: replays files (the seed corpus, a crash reproducer) through a harness,
/// so every corpus entry also runs as a regression check in an ordinary build.
@main
struct Replay {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let harness = Harness(rawValue: name), arguments.count >= 2 else {
            print("usage: shadowd-fuzz json|config FILE_OR_DIRECTORY...")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                print("no such file: \(path)")
                exit(1)
            }
            let files =
                isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 } : [path]
            for file in files {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
                bytes.withUnsafeBufferPointer { harness.run($0) }
                count += 1
            }
        }
        print("\(harness.rawValue): \(count) input(s) replayed, no crash")
    }
}
#endif
