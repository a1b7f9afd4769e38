import LVSCore

/// The checker blocks inside `real_server` (keepalived/check/check_*.c).
extension Decoder {
    mutating func checker(_ kind: CheckerDefinition.Kind, _ node: ConfigNode) -> CheckerDefinition? {
        var checker = CheckerDefinition(kind: kind, location: node.location)
        for item in block(node) {
            if item.keyword != "url" && item.keyword != "host" { refuseBlock(item) }
            if common(item, &checker) { continue }
            switch (kind, item.keyword) {
            case (.http, "nb_get_retry"), (.ssl, "nb_get_retry"):
                report(.deprecated, "nb_get_retry is deprecated - please use 'retry'", item)
                if let v = unsigned(item, 1, in: 0...UInt64(UInt32.max)) { checker.connection.retry = UInt32(v) } else {
                    report(.generalError, "Invalid nb_get_retry value '\(item.words.count > 1 ? item.words[1] : "")'", item)
                }
            case (.http, "virtualhost"), (.ssl, "virtualhost"):
                guard item.words.count > 1 else { report(.generalError, "HTTP_GET virtualhost name missing", item); continue }
                checker.virtualhost = item.words[1]
            case (.http, "http_protocol"), (.ssl, "http_protocol"):
                guard item.words.count > 1 else { report(.generalError, "Missing http_protocol version", item); continue }
                guard ["1.0", "1.1", "1.0C", "1.0c"].contains(item.words[1]) else {
                    report(.generalError, "Invalid http_protocol version \(item.words[1])", item)
                    continue
                }
                checker.httpProtocol = item.words[1]
            case (.http, "enable_sni"), (.ssl, "enable_sni"):
                guard let v = optionalBool(item) else { report(.generalError, "Invalid enable_sni parameter \(item.words[1])", item); continue }
                checker.enableSNI = v
            case (.http, "fast_recovery"), (.ssl, "fast_recovery"):
                guard let v = optionalBool(item) else { report(.generalError, "Invalid fast_recovery parameter \(item.words[1])", item); continue }
                checker.fastRecovery = v
            case (.http, "url"), (.ssl, "url"):
                if let url = url(item, existing: checker.urls) { checker.urls.append(url) }
            case (.smtp, "helo_name"):
                guard item.words.count > 1 else { report(.generalError, "SMTP_CHECK helo name missing", item); continue }
                checker.heloName = item.words[1]
            case (.smtp, "host"):
                // keepalived only logs that this block is deprecated (nothing under -t).
                var extra = CheckerDefinition(kind: .smtp, location: item.location)
                for inner in block(item) where !common(inner, &extra) { unknown(inner) }
            case (.misc, "misc_path"):
                checker.miscPath = script(item)
            case (.misc, "misc_timeout"):
                if let v = unsigned(item, 1, in: 0...4294) { checker.miscTimeout = UInt32(v) } else {
                    report(.generalError, "Invalid misc_timeout value '\(item.words.count > 1 ? item.words[1] : "")'", item)
                }
            case (.misc, "misc_dynamic"):
                checker.miscDynamic = true
            case (.misc, "user"):
                guard item.words.count > 1 else { report(.generalError, "No user specified for misc checker script \(checker.miscPath?.text ?? "")", item); continue }
                checker.user = item.words[1]
                checker.group = item.words.count > 2 ? item.words[2] : nil
            case (.dns, "type"):
                guard let name = word(item, 1) else { continue }
                let known = ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY"]
                guard known.contains(name.uppercased()) else { report(.generalError, "Unknown DNS check type \(name) - ignoring", item); continue }
                checker.dnsType = name.uppercased()
            case (.dns, "name"):
                guard let name = word(item, 1) else { continue }
                if checker.dnsName != nil { report(.generalError, "DNS_CHECK name already specified - ignoring", item); continue }
                if name.contains("..") || (name.hasPrefix(".") && name != ".") {
                    report(.generalError, "DNS_CHECK name '\(name)' has empty label - ignoring", item)
                    continue
                }
                checker.dnsName = name
            case (.udp, "payload"):
                guard item.words.count > 1 else { report(.generalError, "UDP_CHECK payload requires a payload", item); continue }
                guard let bytes = Decoder.hexBytes(item.words.dropFirst().joined()) else {
                    report(.generalError, "Invalid hex string for UDP_CHECK payload", item)
                    continue
                }
                checker.payload = bytes
            case (.udp, "require_reply"):
                let expected = item.words.dropFirst().joined()
                if !expected.isEmpty, Decoder.hexBytes(expected.replacingX()) == nil {
                    report(.generalError, "Invalid hex string for UDP_CHECK reply", item)
                    continue
                }
                checker.requireReply = expected
            case (.udp, "min_reply_length"):
                if let v = unsigned(item, 1, in: 0...65535) { checker.minReplyLength = UInt16(v) } else {
                    report(.generalError, "UDP_CHECK min length \(item.words.count > 1 ? item.words[1] : "") not valid - must be between 0 & 65535", item)
                }
            case (.udp, "max_reply_length"):
                if let v = unsigned(item, 1, in: 0...65535) { checker.maxReplyLength = UInt16(v) } else {
                    report(.generalError, "UDP_CHECK max length \(item.words.count > 1 ? item.words[1] : "") not valid - must be between 0 & 65535", item)
                }
            case (.file, "track_file"):
                guard let name = word(item, 1) else { continue }
                checker.trackFile = name
            case (.file, "weight"):
                guard item.words.count > 1 else { report(.generalError, "track file weight missing", item); continue }
                guard let w = integer(item, 1, in: -Int64(Int32.max)...Int64(Int32.max)) else {
                    report(.generalError, "weight for track file must be in [\(-Int32.max)..\(Int32.max)] inclusive. Ignoring...", item)
                    continue
                }
                checker.weight = Int32(w)
                if item.words.count > 2 {
                    switch item.words[2] {
                    case "reverse": checker.reverse = true
                    case "noreverse": checker.reverse = false
                    default: report(.generalError, "unknown track file weight option \(item.words[2]) - ignoring", item)
                    }
                }
            case (.bfd, "name"):
                guard item.words.count == 2 else {
                    report(.generalError, "BFD_CHECK - No or too many names specified - skipping checker", item)
                    return nil
                }
                checker.bfdName = item.words[1]
            default:
                unknown(item)
            }
        }
        switch kind {
        case .http, .ssl:
            if checker.urls.isEmpty {
                report(.generalError, "HTTP/SSL_GET checker has no urls specified - ignoring", node)
                return nil
            }
        case .misc:
            if checker.miscPath == nil {
                report(.generalError, "No script path has been specified for MISC_CHECKER - skipping", node)
                return nil
            }
        case .file:
            if checker.trackFile == nil {
                report(.generalError, "FILE_CHECK has no track_file specified - ignoring", node)
                return nil
            }
        case .bfd:
            if checker.bfdName == nil {
                report(.generalError, "No name has been specified for BFD_CHECKER - skipping", node)
                return nil
            }
        case .udp:
            if let low = checker.minReplyLength, low > (checker.maxReplyLength ?? 255) {
                report(.generalError, "UDP_CHECK min_reply length \(low) > max_reply_length \(checker.maxReplyLength ?? 255) - will always fail", node)
            }
        default: break
        }
        return checker
    }

    /// The keywords all checkers share; true when `node` was one of them.
    private mutating func common(_ node: ConfigNode, _ checker: inout CheckerDefinition) -> Bool {
        let connects = ![.misc, .file, .bfd].contains(checker.kind)
        let value = node.words.count > 1 ? node.words[1] : ""
        switch node.keyword {
        case "connect_ip" where connects:
            guard let ip = IPAddress(value) else { report(.generalError, "Invalid connect_ip address \(value) - ignoring", node); return true }
            if let bind = checker.connection.bindTo, bind.family != ip.family {
                report(.generalError, "connect_ip address \(value) does not match address family of bindto - skipping", node)
                return true
            }
            checker.connection.connectIP = ip
        case "connect_port" where connects:
            guard let v = UInt16(value), v >= 1 else { report(.generalError, "Invalid checker connect_port '\(value)'", node); return true }
            checker.connection.connectPort = v
        case "bindto" where connects:
            guard let ip = IPAddress(value) else { report(.generalError, "Invalid bindto address \(value) - ignoring", node); return true }
            if let connect = checker.connection.connectIP, connect.family != ip.family {
                report(.generalError, "bindto address \(value) does not match address family of connect_ip - skipping", node)
                return true
            }
            checker.connection.bindTo = ip
        case "bind_port" where connects:
            guard let v = UInt16(value), v >= 1 else { report(.generalError, "Invalid checker bind_port '\(value)'", node); return true }
            checker.connection.bindPort = v
        case "bind_if" where connects:
            guard let name = word(node, 1) else { return true }
            guard name.utf8.count < 16 else { report(.generalError, "Interface name \(name) is too long - ignoring", node); return true }
            checker.connection.bindInterface = name
        case "connect_timeout" where connects:
            if let v = timer(node, 1, minimum: 1, maximum: Decoder.timeoutMaximum) { checker.connection.connectTimeout = v } else {
                report(.generalError, "connect_timeout \(value) invalid - ignoring", node)
            }
        case "fwmark" where connects:
            guard let v = UInt32(value) else { report(.generalError, "Invalid fwmark connection value '\(value)'", node); return true }
            checker.connection.fwmark = v
        case "retry" where ![.file, .bfd].contains(checker.kind):
            if let v = unsigned(node, 1, in: 0...UInt64(UInt32.max)) { checker.connection.retry = UInt32(v) } else {
                report(.generalError, "Invalid retry connection value '\(value)'", node)
            }
        case "delay_before_retry" where ![.file, .bfd].contains(checker.kind):
            if let v = timer(node, 1) { checker.connection.delayBeforeRetry = v } else {
                report(.generalError, "Invalid delay_before_retry connection value '\(value)'", node)
            }
        case "warmup" where ![.file, .bfd].contains(checker.kind):
            if let v = timer(node, 1) { checker.connection.warmup = v } else {
                report(.generalError, "Invalid warmup connection value '\(value)'", node)
            }
        case "delay_loop" where ![.file, .bfd].contains(checker.kind):
            if let v = timer(node, 1, minimum: 1) { checker.connection.delayLoop = v } else {
                report(.generalError, "delay_loop '\(value)' is invalid - ignoring", node)
            }
        case "alpha" where checker.kind != .file:
            guard let v = optionalBool(node) else { report(.generalError, "Invalid alpha parameter \(value)", node); return true }
            checker.connection.alpha = v
        case "log_all_failures" where ![.file, .bfd].contains(checker.kind):
            guard let v = optionalBool(node) else { report(.generalError, "Invalid log_all_failures parameter \(value)", node); return true }
            checker.connection.logAllFailures = v
        default:
            return false
        }
        return true
    }

    private mutating func url(_ node: ConfigNode, existing: [URLCheck]) -> URLCheck? {
        var url = URLCheck(location: node.location)
        for item in block(node) {
            refuseBlock(item)
            switch item.keyword {
            case "path":
                guard let path = word(item, 1) else { continue }
                url.path = path
            case "digest":
                guard let digest = word(item, 1) else { continue }
                if digest.utf8.count != 32 {
                    report(.generalError, "digest '\(digest)' character length should be 32 rather than \(digest.utf8.count)", item)
                    continue
                }
                if let bad = digest.utf8.firstIndex(where: { ScriptWords.hexValue($0) == nil }) {
                    let offset = digest.utf8.distance(from: digest.utf8.startIndex, to: bad)
                    report(.generalError, "Unable to interpret hex digit in '\(digest)' at offset \(offset)/32", item)
                    continue
                }
                if url.digest == digest.lowercased() || existing.contains(where: { $0.digest == digest.lowercased() && $0.path == url.path }) {
                    report(.generalError, "Digest '\(digest)' is a duplicate", item)
                    continue
                }
                url.digest = digest.lowercased()
            case "status_code":
                for code in item.words.dropFirst() {
                    let bounds = code.split(separator: "-", maxSplits: 1).map { UInt16($0) }
                    guard let low = bounds.first ?? nil, (100...599).contains(low) else {
                        report(.generalError, "Invalid HTTP_GET status code '\(code)'", item)
                        continue
                    }
                    let high = bounds.count > 1 ? bounds[1] : low
                    guard let high, (low...599).contains(high) else {
                        report(.generalError, "Invalid HTTP_GET status code '\(code)'", item)
                        continue
                    }
                    url.statusCodes.append(low...high)
                }
            case "virtualhost":
                guard item.words.count > 1 else { report(.generalError, "Missing HTTP_GET virtualhost name", item); continue }
                url.virtualhost = item.words[1]
            case "regex":
                url.regex = item.words.count > 1 ? item.words[1] : nil
            case "regex_no_match":
                url.regexNoMatch = true
            case "regex_options", "regex_min_offset", "regex_max_offset", "regex_stack":
                break
            default:
                unknown(item)
            }
        }
        guard url.path != nil else {
            report(.generalError, "HTTP/SSL_GET checker url has no path - ignoring", node)
            return nil
        }
        return url
    }

    /// Hex digits (blanks between bytes allowed) as bytes; nil for anything else or an odd count.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = text.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let h = ScriptWords.hexValue(digits[i]), let l = ScriptWords.hexValue(digits[i + 1]) else { return nil }
            bytes.append(h << 4 | l)
            i += 2
        }
        return bytes
    }

    // MARK: track_file

    mutating func trackFile(_ node: ConfigNode) -> TrackFileDefinition? {
        guard let name = word(node, 1) else { return nil }
        var track = TrackFileDefinition(name: name, location: node.location)
        var weightSet = false
        for item in block(node) {
            refuseBlock(item)
            switch item.keyword {
            case "file":
                guard item.words.count > 1 else { report(.generalError, "track file file name missing", item); continue }
                if track.file != nil { report(.generalError, "File already set for track file \(name) - ignoring \(item.words[1])", item); continue }
                track.file = item.words[1]
            case "weight":
                guard item.words.count > 1 else { report(.generalError, "No weight specified for track file \(name) - ignoring", item); continue }
                if weightSet { report(.generalError, "Weight already set for track file \(name) - ignoring \(item.words[1])", item); continue }
                guard let w = integer(item, 1, in: -254...254) else {
                    report(.generalError, "Weight (\(item.words[1])) for track_file \(name) must be between [-254..254] inclusive. Ignoring...", item)
                    continue
                }
                track.weight = Int32(w)
                weightSet = true
                if item.words.count > 2 {
                    if item.words[2] == "reverse" { track.reverse = true } else {
                        report(.generalError, "track_file \(name) unknown weight option \(item.words[2])", item)
                    }
                }
            case "init_file":
                track.initFile = Array(item.words.dropFirst())
            default:
                unknown(item)
            }
        }
        guard track.file != nil else {
            report(.generalError, "No file set for track_file \(name) - ignoring", node)
            return nil
        }
        return track
    }
}

extension String {
    /// Nibble wildcards (`x`, `X`) read as zero digits, for checking a UDP_CHECK reply pattern.
    func replacingX() -> String {
        String(map { $0 == "x" || $0 == "X" ? "0" : $0 })
    }
}
