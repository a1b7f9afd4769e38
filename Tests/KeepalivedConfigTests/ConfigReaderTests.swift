import Testing
@testable import KeepalivedConfig

/// keepalived's pre-processing (lib/parser.c read_line), one feature at a time.
@Suite struct ConfigReaderTests {
    func read(_ text: String, files: [String: String] = [:], id: String? = "lb1") -> ([ConfigLine], [Diagnostic]) {
        var all = files
        all["/etc/keepalived/keepalived.conf"] = text
        return ConfigReader.read("/etc/keepalived/keepalived.conf", fileSystem: InMemoryFileSystem(all), options: ConfigReader.Options(configID: id))
    }

    func words(_ text: String, files: [String: String] = [:], id: String? = "lb1") -> [[String]] {
        read(text, files: files, id: id).0.map(\.words)
    }

    @Test func bothCommentStylesAnywhereOutsideQuotes() {
        #expect(words("a b # c\n! whole line\nd \"e # f\" ! g\nh\\#i") == [["a", "b"], ["d", "e # f"], ["h#i"]])
    }

    @Test func everyBraceIsALineOfItsOwn() {
        #expect(words("vrrp_instance X { state MASTER }\nfoo{\n}") == [["vrrp_instance", "X"], ["{"], ["state", "MASTER"], ["}"], ["foo"], ["{"], ["}"]])
        #expect(words("a \"{b}\" {") == [["a", "{b}"], ["{"]])
    }

    @Test func quotedWordsAndKeepalivedsSplitting() {
        #expect(words("notify \"/bin/x.sh a b\" root") == [["notify", "/bin/x.sh a b", "root"]])
        #expect(words("ab\"cd ef\"") == [["ab", "cd ef"]])
        let (_, findings) = read("a \"open")
        #expect(findings.map(\.message).contains("Unterminated quote 'a \"open'"))
    }

    @Test func linesKeepTheirFileAndNumber() {
        let (lines, _) = read("\n\n  a\ninclude sub.conf\nb", files: ["/etc/keepalived/sub.conf": "x\n\ny"])
        #expect(lines.map { "\($0.location)" } == ["/etc/keepalived/keepalived.conf:3", "/etc/keepalived/sub.conf:1",
                                                   "/etc/keepalived/sub.conf:3", "/etc/keepalived/keepalived.conf:5"])
    }

    @Test func includeGlobsRelativeToTheIncludingFileInOrder() {
        let files = ["/etc/keepalived/conf.d/b.conf": "b", "/etc/keepalived/conf.d/a.conf": "a\ninclude ../deeper/*.conf",
                     "/etc/keepalived/deeper/z.conf": "z", "/etc/keepalived/conf.d/.hidden.conf": "hidden", "/etc/keepalived/conf.d/c.txt": "c"]
        #expect(words("include conf.d/*.conf\nend", files: files) == [["a"], ["z"], ["b"], ["end"]])
        #expect(words("include conf.d/{b,a}.conf", files: files) == [["a"], ["z"], ["b"]])
    }

    @Test func includeLoopsAndMissingFilesAreReportedNotFollowed() {
        let (lines, findings) = read("x\ninclude self.conf\ninclude missing.conf\ninclude none/*.conf",
                                     files: ["/etc/keepalived/self.conf": "y\ninclude keepalived.conf"])
        #expect(lines.map(\.words) == [["x"], ["y"]])
        #expect(findings.map(\.description) == [
            "(/etc/keepalived/self.conf: Line 2) Configuration file '/etc/keepalived/keepalived.conf' includes itself (include loop) - skipping",
            "(/etc/keepalived/keepalived.conf: Line 3) Config files missing 'missing.conf'.",
            "(/etc/keepalived/keepalived.conf: Line 4) No config files matched 'none/*.conf'.",
        ])
    }

    @Test func conditionalLinesFollowTheConfigID() {
        let text = "@lb1 a\n@lb2 b\n@^lb1 c\n@^lb2 d\n@lb1\n"
        #expect(words(text) == [["a"], ["d"]])
        #expect(words(text, id: nil) == [["c"], ["d"]])
    }

    @Test func macrosAreExpandedWhenUsedNotWhenDefined() {
        let text = """
            $BASE=10.0.${SUB}
            $SUB=1
            addr ${BASE}.5 $SUB
            $SUB=2
            addr ${BASE}.5 $SUB,x $SUB.y $UNDEFINED
            """
        #expect(words(text) == [["addr", "10.0.1.5", "1"], ["addr", "10.0.2.5", "2,x", "$SUB.y", "$UNDEFINED"]])
    }

    @Test func macrosCanCarryConditionsAndComments() {
        #expect(words("$IF_MAIN=@lb1\n$IF_MAIN priority 240\n$IF_OTHER=@lb2\n$IF_OTHER priority 100\nx ${_HASH} y # z") ==
            [["priority", "240"], ["x"]])
    }

    @Test func multiLineDefinitionsExpandAtTheEndOfALine() {
        let text = """
            $RS=real_server 10.0.0.$N 80 { \\
                weight $N \\
            }
            $N=1
            $RS
            $N=2
            $RS
            """
        #expect(words(text) == [["real_server", "10.0.0.1", "80"], ["{"], ["weight", "1"], ["}"],
                                ["real_server", "10.0.0.2", "80"], ["{"], ["weight", "2"], ["}"]])
    }

    @Test func sequencesRepeatALineNestedRightmostFastest() {
        #expect(words("~SEQ(i, 3) x $i") == [["x", "1"], ["x", "2"], ["x", "3"]])
        #expect(words("~SEQ(i, 5, -2, 1) x $i") == [["x", "5"], ["x", "3"], ["x", "1"]])
        #expect(words("~SEQx(i, 9, 11) x $i") == [["x", "9"], ["x", "a"], ["x", "b"]])
        // `$a` followed by `$` is not a reference (keepalived wants a blank, `,`, `)` or the end after it).
        #expect(words("~SEQ(a, 1, 2) ~SEQ(b, 1, 2) p $a$b") == [["p", "$a1"], ["p", "$a2"], ["p", "$a1"], ["p", "$a2"]])
        #expect(words("~SEQ(a, 1, 2) ~SEQ(b, 1, 2) p ${a}${b}") == [["p", "11"], ["p", "12"], ["p", "21"], ["p", "22"]])
        let (_, findings) = read("~SEQ(i, 1, 0, 5) x\n~SEQUENCE x")
        #expect(findings.map(\.message) == ["Invalid ~SEQ values '~SEQ(i, 1, 0, 5) x'", "Invalid ~SEQ specification '~SEQ(i, 1, 0, 5) x'",
                                            "Invalid ~SEQ specification '~SEQUENCE x'"])
    }

    @Test func listsAssignOneOrSeveralVariables() {
        #expect(words("~LST(v, a, b) x $v") == [["x", "a"], ["x", "b"]])
        #expect(words("~LST({n, p}, {1, 80}, {2}) rs ${n} ${p}") == [["rs", "1", "80"], ["rs", "2"]])
    }

    @Test func hugeExpansionsAreBoundedNotAHang() {
        var options = ConfigReader.Options()
        options.maximumLines = 1000
        let (lines, findings) = ConfigReader.read("/k", fileSystem: InMemoryFileSystem(["/k": "~SEQ(a, 1, 1000) ~SEQ(b, 1, 1000) x"]), options: options)
        #expect(lines.count == 1000)
        #expect(findings.last?.kind == .fatal)
        let (_, selfReference) = read("$A=$A$A\nx $A")
        #expect(!selfReference.isEmpty)
    }

    @Test func globPatterns() {
        #expect(GlobPattern("/a/*.conf").matches("/a/x.conf"))
        #expect(!GlobPattern("/a/*.conf").matches("/a/b/x.conf"))
        #expect(!GlobPattern("/a/*.conf").matches("/a/.x.conf"))
        #expect(GlobPattern("/a/[bc]?.conf").matches("/a/c1.conf"))
        #expect(!GlobPattern("/a/[!bc]?.conf").matches("/a/c1.conf"))
        #expect(GlobPattern("/a/{x,y}/z").matches("/a/y/z"))
    }
}
