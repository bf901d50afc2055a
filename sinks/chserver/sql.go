package chserver

import (
	"strings"
)

// token is one lexical element of a statement: its text and byte offsets.
type token struct {
	text       string
	start, end int
}

// lexer walks SQL top-level words, skipping quoted strings, quoted
// identifiers, comments and bracketed groups. It only needs to be good enough
// to find INSERT ... FORMAT <name> / VALUES / SETTINGS and a trailing FORMAT
// clause; the engine parses the statement for real.
type lexer struct {
	s     string
	pos   int
	depth int // bracket depth of the last returned token
}

// next returns the next token, or ok=false at the end. Strings, quoted
// identifiers and punctuation are returned as single tokens.
func (l *lexer) next() (token, bool) {
	s := l.s
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '-' && strings.HasPrefix(s[l.pos:], "--"), c == '#' && (strings.HasPrefix(s[l.pos:], "#!") || strings.HasPrefix(s[l.pos:], "# ")):
			if i := strings.IndexByte(s[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(s)
			}
		case c == '/' && strings.HasPrefix(s[l.pos:], "/*"):
			if i := strings.Index(s[l.pos+2:], "*/"); i >= 0 {
				l.pos += i + 4
			} else {
				l.pos = len(s)
			}
		case c == '\'' || c == '"' || c == '`':
			start := l.pos
			l.pos++
			for l.pos < len(s) {
				if s[l.pos] == '\\' {
					l.pos += 2
					continue
				}
				if s[l.pos] == c {
					if l.pos+1 < len(s) && s[l.pos+1] == c { // doubled quote
						l.pos += 2
						continue
					}
					l.pos++
					break
				}
				l.pos++
			}
			if l.pos > len(s) {
				l.pos = len(s)
			}
			return token{s[start:l.pos], start, l.pos}, true
		case isWordByte(c):
			start := l.pos
			for l.pos < len(s) && isWordByte(s[l.pos]) {
				l.pos++
			}
			return token{s[start:l.pos], start, l.pos}, true
		default:
			start := l.pos
			l.pos++
			switch c {
			case '(', '[', '{':
				l.depth++
			case ')', ']', '}':
				if l.depth > 0 {
					l.depth--
				}
			}
			return token{s[start:l.pos], start, l.pos}, true
		}
	}
	return token{}, false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// insertSplit describes an INSERT whose data follows the statement.
type insertSplit struct {
	// Head is the statement before the data clause, without SETTINGS,
	// e.g. "INSERT INTO t (a, b)".
	Head string
	// Settings is the "SETTINGS ..." clause text, or "".
	Settings string
	// Format is the input format (Values for INSERT ... VALUES).
	Format string
	// DataOffset is where the inline data starts in the statement text.
	DataOffset int
}

// splitInsert recognises "INSERT INTO ... [SETTINGS ...] FORMAT <fmt> <data>"
// and "INSERT INTO ... VALUES <data>". It returns ok=false for anything else
// (including INSERT ... SELECT and INSERT ... FROM INFILE), which is then run
// as is.
func splitInsert(sql string) (insertSplit, bool) {
	l := &lexer{s: sql}
	t, ok := l.next()
	if !ok || !strings.EqualFold(t.text, "INSERT") {
		return insertSplit{}, false
	}
	settingsAt := -1
	for {
		t, ok = l.next()
		if !ok {
			return insertSplit{}, false
		}
		if l.depth > 0 || t.text == "(" {
			continue
		}
		switch strings.ToUpper(t.text) {
		case "SELECT", "WITH", "INFILE":
			return insertSplit{}, false
		case "SETTINGS":
			settingsAt = t.start
		case "VALUES":
			return finishSplit(sql, t.start, settingsAt, "Values", t.end), true
		case "FORMAT":
			f, ok := l.next()
			if !ok || !isWordByte(f.text[0]) {
				return insertSplit{}, false
			}
			// Data starts after the first newline following the format name
			// or, without one, after the whitespace (ClickHouse's rule).
			i := f.end
			for i < len(sql) && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\r' || sql[i] == '\n') {
				if sql[i] == '\n' {
					i++
					break
				}
				i++
			}
			return finishSplit(sql, t.start, settingsAt, f.text, i), true
		}
	}
}

func finishSplit(sql string, clauseAt, settingsAt int, format string, data int) insertSplit {
	sp := insertSplit{Format: format, DataOffset: data}
	if settingsAt >= 0 {
		sp.Head = strings.TrimSpace(sql[:settingsAt])
		sp.Settings = strings.TrimSpace(sql[settingsAt:clauseAt])
	} else {
		sp.Head = strings.TrimSpace(sql[:clauseAt])
	}
	return sp
}

// outputFormat returns the name in a top-level "FORMAT <name>" clause of a
// non-INSERT statement, or "".
func outputFormat(sql string) string {
	l := &lexer{s: sql}
	first, ok := l.next()
	if !ok || strings.EqualFold(first.text, "INSERT") {
		return ""
	}
	format := ""
	for {
		t, ok := l.next()
		if !ok {
			return format
		}
		if l.depth == 0 && strings.EqualFold(t.text, "FORMAT") {
			if f, ok := l.next(); ok && isWordByte(f.text[0]) {
				format = f.text
			}
		}
	}
}

// firstKeyword returns the upper-cased first word of sql.
func firstKeyword(sql string) string {
	l := &lexer{s: sql}
	t, ok := l.next()
	if !ok {
		return ""
	}
	return strings.ToUpper(t.text)
}

// isHelloQuery reports whether sql is clickhouse-go's HTTP handshake query.
func isHelloQuery(sql string) bool {
	return strings.Join(strings.Fields(sql), " ") == "SELECT displayName(), version(), revision(), timezone()"
}

// createsTemporaryTable reports whether sql is CREATE [OR REPLACE]
// TEMPORARY TABLE.
func createsTemporaryTable(sql string) bool {
	l := &lexer{s: sql}
	want := []string{"CREATE", "TEMPORARY"}
	for t, ok := l.next(); ok && len(want) > 0; t, ok = l.next() {
		switch w := strings.ToUpper(t.text); {
		case w == want[0]:
			want = want[1:]
		case len(want) == 1 && (w == "OR" || w == "REPLACE"):
		default:
			return false
		}
	}
	return len(want) == 0
}
