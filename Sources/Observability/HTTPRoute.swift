/// What a request to the observability endpoint asks for, read from its method and target. Pure:
/// the server answers a `Problem` with its status and message as they are.
public enum HTTPRoute: Equatable, Sendable {
    case dashboard
    /// `backendRates`: also the per-real-server rate gauges (`?rates=all`; Prometheus's rate() over
    /// the counters gives them otherwise, and a large farm's page is a third smaller without).
    case metrics(backendRates: Bool)
    case index
    case status
    case services
    case connections(offset: Int, limit: Int)
    case checkers
    case vrrp
    case sync
    case events(after: UInt64, limit: Int)
    /// The sparklines' samples taken after a Unix time (0: all kept).
    case history(after: Double)

    /// A request the endpoint refuses, with the status and the message it answers.
    public struct Problem: Error, Equatable, Sendable {
        public var status: Int
        public var message: String

        public init(_ status: Int, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    public static let maximumPage = 10_000
    public static let defaultPage = 100

    /// The API's paths, as `/api/v1` lists them.
    public static let apiPaths = ["/api/v1/status", "/api/v1/services", "/api/v1/connections", "/api/v1/checkers",
                                  "/api/v1/vrrp", "/api/v1/sync", "/api/v1/events", "/api/v1/history"]

    public static func resolve(method: String, target: String) -> Result<HTTPRoute, Problem> {
        guard method == "GET" || method == "HEAD" else {
            return .failure(Problem(405, "method \(method) is not allowed: the endpoint is read-only (GET, HEAD); changes go through the control socket (ipvsadm)"))
        }
        let path: Substring
        let query: Substring
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            query = target[target.index(after: q)...]
        } else {
            path = target[...]
            query = ""
        }
        let parameters: [(String, String)]
        switch parse(query) {
        case .success(let p): parameters = p
        case .failure(let problem): return .failure(problem)
        }
        var trimmed = String(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        switch trimmed {
        case "/", "/index.html":
            return allow(parameters, []).map { .dashboard }
        case "/metrics":
            return allow(parameters, ["rates"]).flatMap { _ in
                switch parameters.first(where: { $0.0 == "rates" })?.1 {
                case nil, "services": return .success(.metrics(backendRates: false))
                case "all": return .success(.metrics(backendRates: true))
                case let other?: return .failure(Problem(400, "query parameter 'rates' must be services or all, not '\(other)'"))
                }
            }
        case "/api", "/api/v1":
            return allow(parameters, []).map { .index }
        case "/api/v1/status":
            return allow(parameters, []).map { .status }
        case "/api/v1/services":
            return allow(parameters, []).map { .services }
        case "/api/v1/checkers":
            return allow(parameters, []).map { .checkers }
        case "/api/v1/vrrp":
            return allow(parameters, []).map { .vrrp }
        case "/api/v1/sync":
            return allow(parameters, []).map { .sync }
        case "/api/v1/connections":
            return allow(parameters, ["offset", "limit"]).flatMap { _ in
                number(parameters, "offset", default: 0, range: 0...Int.max).flatMap { offset in
                    number(parameters, "limit", default: defaultPage, range: 1...maximumPage).map { .connections(offset: offset, limit: $0) }
                }
            }
        case "/api/v1/events":
            return allow(parameters, ["after", "limit"]).flatMap { _ in
                number(parameters, "after", default: 0, range: 0...Int.max).flatMap { after in
                    number(parameters, "limit", default: 1000, range: 1...maximumPage).map { .events(after: UInt64(after), limit: $0) }
                }
            }
        case "/api/v1/history":
            return allow(parameters, ["after"]).flatMap { _ in
                guard let text = parameters.first(where: { $0.0 == "after" })?.1 else { return .success(.history(after: 0)) }
                guard text.count <= 24, text.first?.isNumber == true, let t = Double(text), t.isFinite, t >= 0,
                      text.allSatisfy({ $0.isNumber || $0 == "." }) else {
                    return .failure(Problem(400, "query parameter 'after' must be a Unix time in seconds, not '\(text)'"))
                }
                return .success(.history(after: t))
            }
        default:
            return .failure(Problem(404, "no such path: \(trimmed) (try /, /metrics or /api/v1)"))
        }
    }

    private static func allow(_ parameters: [(String, String)], _ names: Set<String>) -> Result<Void, Problem> {
        for (name, _) in parameters where !names.contains(name) {
            let known = names.isEmpty ? "this path takes none" : "known: \(names.sorted().joined(separator: ", "))"
            return .failure(Problem(400, "unknown query parameter '\(name)' (\(known))"))
        }
        var seen: Set<String> = []
        for (name, _) in parameters where !seen.insert(name).inserted {
            return .failure(Problem(400, "query parameter '\(name)' given twice"))
        }
        return .success(())
    }

    private static func number(_ parameters: [(String, String)], _ name: String, default value: Int, range: ClosedRange<Int>) -> Result<Int, Problem> {
        guard let text = parameters.first(where: { $0.0 == name })?.1 else { return .success(value) }
        guard !text.isEmpty, text.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(text) else {
            return .failure(Problem(400, "query parameter '\(name)' must be a whole number, not '\(text)'"))
        }
        guard range.contains(n) else {
            let upper = range.upperBound == Int.max ? "" : " to \(range.upperBound)"
            return .failure(Problem(400, "query parameter '\(name)' must be from \(range.lowerBound)\(upper), not \(n)"))
        }
        return .success(n)
    }

    /// `a=1&b=2`, percent-decoded (`+` is a space).
    static func parse(_ query: Substring) -> Result<[(String, String)], Problem> {
        var out: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(pieces[0]), let value = decode(pieces.count > 1 ? pieces[1] : "") else {
                return .failure(Problem(400, "malformed query string"))
            }
            guard !name.isEmpty else { return .failure(Problem(400, "malformed query string: a parameter without a name")) }
            out.append((name, value))
        }
        return .success(out)
    }

    private static func decode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            switch b {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = it.next().flatMap(hex), let l = it.next().flatMap(hex) else { return nil }
                bytes.append(h << 4 | l)
            default: bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
}
