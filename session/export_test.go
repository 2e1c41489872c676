package session

// StmtCacheCounts returns the statement cache's figures: statements
// cached now, prepared on a pool so far, and closed so far.
func StmtCacheCounts(m *Manager) (cached int, prepared, closed int64) {
	if m.stmts == nil {
		return 0, 0, 0
	}
	return m.stmts.len(), m.stmts.prepared.Load(), m.stmts.dropped.Load()
}
