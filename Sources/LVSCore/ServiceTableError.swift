/// Why a change to the virtual server table was refused. Each case's description is the exact text
/// ipvsadm 1.31 prints for the kernel's answer to that change, so a front end can print it as is.
public enum ServiceTableError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `-A` of a service that exists (EEXIST).
    case serviceExists(VirtualService.Key)
    /// `-E`, `-D`, `-Z` or a listing of a service that does not exist (ESRCH).
    case noSuchService(VirtualService.Key)
    /// `-a`, `-e`, `-d` on a service that does not exist (ESRCH).
    case serviceNotDefined(VirtualService.Key)
    /// An unknown scheduler or persistence engine name (ENOENT).
    case schedulerNotFound(String)
    /// `-a` of a real server the service already has (EEXIST).
    case destinationExists(Endpoint)
    /// `-e` or `-d` of a real server the service does not have (ENOENT).
    case noSuchDestination(Endpoint)
    /// A weight below 0 or a lower threshold above the upper one (ERANGE).
    case outOfRange(String)
    /// Anything else the kernel answers EINVAL: a bad IPv6 prefix, a scheduler name of 16 characters or
    /// more, a tunnel without its port, mixed families outside tunnelling, more servers than a Maglev
    /// table has slots.
    case invalid(String)
    /// The table or the connection limit is exhausted (ENOMEM).
    case noMemory
    /// `--start-daemon` of a state (master or backup) that already runs (EEXIST).
    case daemonRunning(String)
    /// `--stop-daemon` of a state that does not run (ESRCH).
    case noDaemon
    /// `--start-daemon` on an interface this host does not have (ENODEV).
    case noDevice(String)

    public var description: String {
        switch self {
        case .serviceExists: return "Service already exists"
        case .noSuchService: return "No such service"
        case .serviceNotDefined: return "Service not defined"
        case .schedulerNotFound: return "Scheduler or persistence engine not found"
        case .destinationExists: return "Destination already exists"
        case .noSuchDestination: return "No such destination"
        case .outOfRange: return "Numerical result out of range"
        case .invalid: return "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        case .noMemory: return "Memory allocation problem"
        case .daemonRunning: return "Daemon has already run"
        case .noDaemon: return "No daemon is running"
        case .noDevice: return "No such device"
        }
    }

    /// A longer explanation for logs and JSON answers (ipvsadm's own text carries no detail).
    public var detail: String {
        switch self {
        case .serviceExists(let key): return "virtual service \(key) already exists"
        case .noSuchService(let key), .serviceNotDefined(let key): return "no virtual service \(key)"
        case .schedulerNotFound(let name): return "unknown scheduler or persistence engine '\(name)'"
        case .destinationExists(let endpoint): return "real server \(endpoint) already exists"
        case .noSuchDestination(let endpoint): return "no real server \(endpoint)"
        case .outOfRange(let why), .invalid(let why): return why
        case .noMemory: return "out of memory"
        case .daemonRunning(let state): return "a \(state) sync daemon is already running"
        case .noDaemon: return "no such sync daemon is running"
        case .noDevice(let name): return "no interface \(name)"
        }
    }
}
