import CSQLite

/// A failed SQLite call: the result code, SQLite's message and what we were doing.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var message: String
    public var context: String

    public var description: String { "sqlite error \(code) (\(message)) while \(context)" }

    /// SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock.
    public var isBusy: Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }
}

/// One SQLite connection with a cache of prepared statements.
///
/// Not thread-safe by itself: a connection is owned by one thread or actor at a time (the
/// writer, or one reader). `@unchecked Sendable` so an owner can hand it to the thread that will
/// own it; SQLite is built THREADSAFE=1 (serialized), so even a mistaken concurrent call cannot
/// corrupt memory, only interleave.
public final class SQLiteConnection: @unchecked Sendable {
    /// The raw `sqlite3 *`, for adapter code that registers functions or reads C-level state.
    public let db: OpaquePointer
    public let path: String
    public let readOnly: Bool
    private var cache: [String: Statement] = [:]

    public init(path: String, readOnly: Bool = false, create: Bool = true) throws(SQLiteError) {
        var handle: OpaquePointer?
        var flags = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if !readOnly && create { flags |= SQLITE_OPEN_CREATE }
        flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(code: rc, message: msg, context: "opening \(path)")
        }
        db = handle
        self.path = path
        self.readOnly = readOnly
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        cache.removeAll()  // statements finalize before the connection closes
        sqlite3_close_v2(db)
    }

    public func error(_ rc: Int32, _ context: @autoclosure () -> String) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(db)), context: context())
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? ""
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: msg, context: "executing \(sql.prefix(80))")
        }
    }

    /// A cached prepared statement for `sql`, reset and with bindings cleared.
    public func statement(_ sql: String) throws(SQLiteError) -> Statement {
        if let s = cache[sql] {
            s.reset()
            return s
        }
        let s = try Statement(self, sql)
        cache[sql] = s
        return s
    }

    /// A one-off statement, not cached (for SQL built at run time).
    public func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        try Statement(self, sql)
    }

    /// The single integer of the first row of `sql` (PRAGMA values, counts).
    public func scalar(_ sql: String) throws(SQLiteError) -> Int64? {
        let s = try prepare(sql)
        return try s.step() ? s.int(0) : nil
    }

    /// Runs `body` in a transaction (`BEGIN IMMEDIATE` for writers, so lock waits happen up front).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute(readOnly ? "BEGIN" : "BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }
    public var changes: Int { Int(sqlite3_changes(db)) }
}

/// A prepared statement. Bind with 1-based indexes; read columns with 0-based indexes.
public final class Statement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection

    init(_ connection: SQLiteConnection, _ sql: String) throws(SQLiteError) {
        var h: OpaquePointer?
        let rc = sqlite3_prepare_v3(connection.db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &h, nil)
        guard rc == SQLITE_OK, let h else { throw connection.error(rc, "preparing \(sql.prefix(120))") }
        handle = h
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Binding (device strings are always bound, never spliced into SQL)

    public func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(handle, i, v) }
    public func bind(_ i: Int32, _ v: Int) { sqlite3_bind_int64(handle, i, Int64(v)) }
    public func bind(_ i: Int32, _ v: Double) { sqlite3_bind_double(handle, i, v) }
    public func bind(_ i: Int32, _ v: String) { sqlite3_bind_text(handle, i, v, -1, fw_sqlite_transient()) }
    public func bind(_ i: Int32, _ v: String?) {
        if let v { bind(i, v) } else { sqlite3_bind_null(handle, i) }
    }
    public func bind(_ i: Int32, _ v: Int64?) {
        if let v { bind(i, v) } else { sqlite3_bind_null(handle, i) }
    }
    public func bind(_ i: Int32, _ v: Double?) {
        if let v { bind(i, v) } else { sqlite3_bind_null(handle, i) }
    }
    public func bind(_ i: Int32, blob v: [UInt8]) {
        v.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob(handle, i, raw.baseAddress, Int32(raw.count), fw_sqlite_transient())
        }
    }
    public func bind(_ i: Int32, blob v: UnsafeRawBufferPointer) {
        sqlite3_bind_blob(handle, i, v.baseAddress, Int32(v.count), fw_sqlite_transient())
    }
    /// Binds `v` without copying it (SQLITE_STATIC): the caller keeps the bytes alive and
    /// unchanged until the statement has stepped and been reset (`run()` does both), and
    /// binds the parameter again before the next step. An empty buffer binds an empty blob.
    public func bind(_ i: Int32, staticBlob v: UnsafeRawBufferPointer) {
        if v.isEmpty {
            sqlite3_bind_zeroblob(handle, i, 0)
        } else {
            sqlite3_bind_blob(handle, i, v.baseAddress, Int32(v.count), fw_sqlite_static())
        }
    }

    // MARK: Stepping

    /// Steps once: true when a row is available, false when done.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let err = connection.error(rc, "running \(String(cString: sqlite3_sql(handle)).prefix(120))")
            sqlite3_reset(handle)
            throw err
        }
    }

    /// Runs a statement that returns no rows, then resets it for reuse.
    public func run() throws(SQLiteError) {
        _ = try step()
        sqlite3_reset(handle)
    }

    // MARK: Columns

    public enum ColumnType { case integer, real, text, blob, null }

    public var columnCount: Int32 { sqlite3_column_count(handle) }
    public func columnName(_ c: Int32) -> String { sqlite3_column_name(handle, c).map { String(cString: $0) } ?? "" }
    public func columnType(_ c: Int32) -> ColumnType {
        switch sqlite3_column_type(handle, c) {
        case SQLITE_INTEGER: .integer
        case SQLITE_FLOAT: .real
        case SQLITE_TEXT: .text
        case SQLITE_BLOB: .blob
        default: .null
        }
    }
    public func isNull(_ c: Int32) -> Bool { sqlite3_column_type(handle, c) == SQLITE_NULL }
    public func int(_ c: Int32) -> Int64 { sqlite3_column_int64(handle, c) }
    public func intOrNil(_ c: Int32) -> Int64? { isNull(c) ? nil : int(c) }
    public func double(_ c: Int32) -> Double { sqlite3_column_double(handle, c) }
    public func doubleOrNil(_ c: Int32) -> Double? { isNull(c) ? nil : double(c) }
    public func text(_ c: Int32) -> String {
        guard let p = sqlite3_column_text(handle, c) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, c))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    public func textOrNil(_ c: Int32) -> String? { isNull(c) ? nil : text(c) }
    /// The column as text, or `existing` itself when it holds the same bytes (no allocation:
    /// for re-reads of rows that mostly did not change).
    public func text(_ c: Int32, reusing existing: String) -> String {
        guard let p = sqlite3_column_text(handle, c) else { return existing.isEmpty ? existing : "" }
        let n = Int(sqlite3_column_bytes(handle, c))
        let bytes = UnsafeBufferPointer(start: p, count: n)
        let same = existing.utf8.count == n && existing.utf8.withContiguousStorageIfAvailable { $0.elementsEqual(bytes) } == true
        return same ? existing : String(decoding: bytes, as: UTF8.self)
    }
    public func blob(_ c: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, c))
        guard n > 0, let p = sqlite3_column_blob(handle, c) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
