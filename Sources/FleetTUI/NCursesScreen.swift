import CNCurses

#if canImport(Glibc)
    import Glibc
#endif

/// The terminal, through ncursesw: the only code that calls ncurses.
///
/// One instance, used only by the thread that created it (the UI thread): ncurses is not
/// thread-safe, so nothing here is Sendable. `paint` writes a whole canvas into ncurses'
/// buffer and flushes once (`wnoutrefresh` + `doupdate`, which sends only what changed).
public final class NCursesScreen {
    public let colors: Bool
    private var screen: OpaquePointer?
    private var output: UnsafeMutablePointer<FILE>?
    private var input: UnsafeMutablePointer<FILE>?
    private var ended = false
    private var buffer: [wchar_t] = []
    private var cursorShown = false

    /// Opens the terminal on stdin/stdout (or on the given files, e.g. /dev/null for the
    /// benchmark). `colors`: use colour if the terminal has it (false for NO_COLOR).
    public init(term: String? = nil, outputPath: String? = nil, colors wantColors: Bool, size: (Int, Int)? = nil) throws {
        setlocale(LC_ALL, "")
        if let outputPath {
            output = fopen(outputPath, "w")
            input = fopen(outputPath == "/dev/null" ? "/dev/null" : "/dev/tty", "r")
        } else {
            output = fdopen(dup(1), "w")
            input = fdopen(dup(0), "r")
        }
        guard let output, let input else { throw TUIError("cannot open the terminal's input and output") }
        let s: OpaquePointer? = term.map { t in t.withCString { newterm($0, output, input) } } ?? newterm(nil, output, input)
        guard let s else {
            fclose(output)
            fclose(input)
            throw TUIError("cannot initialise the terminal (TERM=\(getenv("TERM").map { String(cString: $0) } ?? "unset")): set TERM to your terminal's type")
        }
        screen = s
        set_term(s)
        if let size { resizeterm(Int32(size.0), Int32(size.1)) }
        cbreak()
        noecho()
        nonl()
        _ = fw_keypad(1)
        _ = fw_nodelay(1)
        set_escdelay(25)
        curs_set(0)
        if wantColors && has_colors() {
            start_color()
            let bg: Int16 = use_default_colors() == OK ? -1 : Int16(COLOR_BLACK)
            let fg: [Color: Int32] = [
                .red: COLOR_RED, .green: COLOR_GREEN, .yellow: COLOR_YELLOW, .blue: COLOR_BLUE, .magenta: COLOR_MAGENTA,
                .cyan: COLOR_CYAN, .white: COLOR_WHITE,
            ]
            for (c, f) in fg { init_pair(Int16(c.rawValue), Int16(f), bg) }
            colors = true
        } else {
            colors = false
        }
    }

    /// The bytes that put the terminal back without ncurses (for the crash handler).
    public static func restoreSequence() -> [UInt8] {
        var out: [UInt8] = []
        for cap in ["sgr0", "cnorm", "rmkx", "rmcup"] {
            if let p = fw_tigetstr(cap) { out.append(contentsOf: Array(String(cString: p).utf8)) }
        }
        return out
    }

    public var size: (width: Int, height: Int) { (Int(fw_cols()), Int(fw_lines())) }

    /// Re-reads the terminal size after SIGWINCH.
    public func resize() {
        _ = fw_resize_from_tty(1)
        _ = fw_clearok(1)
    }

    public func resize(width: Int, height: Int) {
        resizeterm(Int32(height), Int32(width))
    }

    // MARK: - Drawing

    /// Paints `canvas` and flushes once.
    public func paint(_ canvas: Canvas) {
        let (w, h) = size
        let width = min(w, canvas.width)
        let height = min(h, canvas.height)
        for y in 0..<height {
            var x = 0
            while x < width {
                let style = canvas[x, y].style
                let start = x
                buffer.removeAll(keepingCapacity: true)
                while x < width, canvas[x, y].style == style {
                    let cell = canvas[x, y]
                    for u in cell.text.unicodeScalars { buffer.append(wchar_t(bitPattern: u.value)) }
                    x += 1
                }
                guard !buffer.isEmpty else { continue }
                let (attrs, pair) = attributes(style)
                _ = fw_attr_set(attrs, pair)
                buffer.withUnsafeBufferPointer { b in _ = fw_mvaddnwstr(Int32(y), Int32(start), b.baseAddress, Int32(b.count)) }
            }
        }
        _ = fw_attr_set(0, 0)
        if let (cx, cy) = canvas.cursor {
            if !cursorShown { curs_set(1); cursorShown = true }
            _ = fw_move(Int32(cy), Int32(cx))
        } else if cursorShown {
            curs_set(0)
            cursorShown = false
        }
        _ = fw_noutrefresh()
        doupdate()
    }

    /// ncurses attributes and colour pair for a style. Without colour, meaning moves to
    /// attributes: red (bad) is bold, yellow (warning) underlined.
    func attributes(_ s: Style) -> (attr_t, Int16) {
        var a: attr_t = 0
        if s.bold { a |= fw_a_bold() }
        if s.reverse { a |= fw_a_reverse() }
        if s.dim { a |= fw_a_dim() }
        if s.underline { a |= fw_a_underline() }
        guard let c = s.color else { return (a, 0) }
        if colors { return (a, Int16(c.rawValue)) }
        switch c {
        case .red: a |= fw_a_bold()
        case .yellow: a |= fw_a_underline()
        default: break
        }
        return (a, 0)
    }

    // MARK: - Input

    /// The next pending key, or nil when none is waiting (never blocks).
    public func readKey() -> Key? {
        var ch: wint_t = 0
        let rc = fw_get_wch(&ch)
        if rc == ERR { return nil }
        if rc == KEY_CODE_YES {
            switch Int32(ch) {
            case KEY_UP: return .up
            case KEY_DOWN: return .down
            case KEY_LEFT: return .left
            case KEY_RIGHT: return .right
            case KEY_NPAGE: return .pageDown
            case KEY_PPAGE: return .pageUp
            case KEY_HOME: return .home
            case KEY_END: return .end
            case KEY_ENTER: return .enter
            case KEY_BACKSPACE: return .backspace
            case KEY_BTAB: return .backTab
            case KEY_DC: return .delete
            case KEY_RESIZE: return .resize
            default: return .unknown
            }
        }
        return Self.key(forCharacter: UInt32(ch))
    }

    /// A character code from the terminal as a key.
    static func key(forCharacter c: UInt32) -> Key {
        switch c {
        case 10, 13: return .enter
        case 27: return .escape
        case 9: return .tab
        case 8, 127: return .backspace
        case 1...26: return .ctrl(Character(Unicode.Scalar(c + 96)!))
        default:
            guard let u = Unicode.Scalar(c), c >= 32 else { return .unknown }
            return .char(Character(u))
        }
    }

    // MARK: - Leaving

    /// Restores the terminal (idempotent).
    public func end() {
        guard !ended else { return }
        ended = true
        curs_set(1)
        endwin()
        if let screen { delscreen(screen) }
        screen = nil
        if let output { fclose(output) }
        if let input { fclose(input) }
        output = nil
        input = nil
    }

    deinit { end() }
}
