import ArgumentParser
import Foundation

/// nginx serving a fixed JSON as baseline and candidate, nginx's plain proxy and `mirror` in front
/// of it, and `shadowd serve` (one event loop) mirroring to the chosen candidate; the sidecar and
/// nginx pinned to core 0, backends and wrk to core 1.
struct ProxyRig {
    typealias Ports = (base: Int, candidate: Int, plain: Int, mirror: Int, sidecar: Int, admin: Int, slow: Int)
    let ports: Ports
    let directory: String
    /// A wrk script posting a ~1 KB KServe V2 request.
    let script: String
    let processes: [Process]

    /// Starts everything and waits a second for it to listen.
    ///
    /// - Parameter candidate: `fast` (nginx), `slow` (200 ms), `hung` or `refused`.
    static func start(candidate: String) async throws -> ProxyRig {
        for tool in ["wrk", "nginx", "taskset"] where which(tool) == nil {
            throw ValidationError("\(tool) is missing: apt-get install -y wrk nginx-light util-linux")
        }
        let directory = NSTemporaryDirectory() + "shadowd-bench-proxy-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ports: Ports = (base: 28001, candidate: 28002, plain: 28003, mirror: 28004, sidecar: 28005, admin: 28006, slow: 28007)
        var processes: [Process] = []
        let body =
            #"{"model_name":"m","model_version":"1","outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["cat"]},{"name":"probabilities","datatype":"FP32","shape":[3],"data":[0.7,0.2,0.1]}],"pad":"\#(String(repeating: "x", count: 80))"}"#
        let candidatePort: Int
        switch candidate {
        case "fast": candidatePort = ports.candidate
        case "slow", "hung":
            let spec = directory + "/candidate.yaml"
            try (candidate == "slow" ? "latency: {min: 200ms, max: 200ms}\n" : "hang_rate: 1.0\n").write(
                toFile: spec,
                atomically: true,
                encoding: .utf8
            )
            processes.append(try spawn(["-c", "1", siblingBinary("shadowd"), "fixture-model", "--spec", spec, "--port", "\(ports.slow)"]))
            candidatePort = ports.slow
        case "refused": candidatePort = 28099
        default: throw ValidationError("--candidate: fast, slow, hung or refused")
        }
        try Self.nginxConfig(
            directory: directory,
            ports: (ports.base, ports.candidate, ports.plain, ports.mirror),
            mirrorTo: candidatePort,
            answer: body
        )
        .write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        processes.append(try spawn(["-c", "0", which("nginx")!, "-c", directory + "/nginx.conf", "-p", directory]))
        try """
        server: {listen: "127.0.0.1:\(ports.sidecar)", threads: 1}
        admin: {listen: "127.0.0.1:\(ports.admin)"}
        storage: {path: \(directory)/bench.sqlite}
        routes:
          - name: bench
            prefix: /
            baseline: {url: "http://127.0.0.1:\(ports.base)"}
            candidates: [{name: c, url: "http://127.0.0.1:\(candidatePort)", timeout: 1s}]
            scorer: {kind: json, protocol: kserve_v2}
        """.write(toFile: directory + "/shadowd.yaml", atomically: true, encoding: .utf8)
        processes.append(
            try spawn(["-c", "0", siblingBinary("shadowd"), "serve", "--config", directory + "/shadowd.yaml", "--log-level", "warning"])
        )
        let script = directory + "/post.lua"
        try """
        wrk.method = "POST"
        wrk.body = '{"id":"x","inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[\(Array(repeating: "1.5", count: 150).joined(separator: ","))]}]}'
        wrk.headers["Content-Type"] = "application/json"
        """.write(toFile: script, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .seconds(1))
        return ProxyRig(ports: ports, directory: directory, script: script, processes: processes)
    }

    func stop() {
        for process in self.processes where process.isRunning { process.terminate() }
        for process in self.processes { process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    static func nginxConfig(directory: String, ports: (Int, Int, Int, Int), mirrorTo candidate: Int, answer: String) -> String {
        """
        worker_processes 1;
        daemon off;
        error_log \(directory)/nginx-error.log;
        pid \(directory)/nginx.pid;
        events { worker_connections 4096; }
        http {
          access_log off;
          client_body_temp_path \(directory);
          proxy_temp_path \(directory);
          upstream base { server 127.0.0.1:\(ports.0); keepalive 64; }
          upstream cand { server 127.0.0.1:\(candidate); keepalive 64; }
          server { listen 127.0.0.1:\(ports.0); location / { default_type application/json; return 200 '\(answer)'; } }
          server { listen 127.0.0.1:\(ports.1); location / { default_type application/json; return 200 '\(answer)'; } }
          server { listen 127.0.0.1:\(ports.2); location / { proxy_pass http://base; proxy_http_version 1.1; proxy_set_header Connection ""; } }
          server {
            listen 127.0.0.1:\(ports.3);
            location / { mirror /mirror; proxy_pass http://base; proxy_http_version 1.1; proxy_set_header Connection ""; }
            location = /mirror { internal; proxy_pass http://cand$request_uri; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_connect_timeout 1s; proxy_read_timeout 1s; }
          }
        }
        """
    }
}
