package chserver

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Session timeouts, as ClickHouse's defaults: session_timeout (seconds)
// defaults to 60 and may not exceed max_session_timeout, 3600.
const (
	defaultSessionTimeout = 60 * time.Second
	maxSessionTimeout     = 3600 * time.Second
)

// sessions holds the state of ClickHouse HTTP sessions (session_id): the
// settings their SET statements chose, which every later request of the
// session starts from. A session ends session_timeout after its last
// request. Temporary tables are not kept per session (see README.md).
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
}

type session struct {
	settings map[string]string
	timeout  time.Duration
	lastUsed time.Time
}

// use returns a copy of the settings of session id, opening it unless
// check asks for an existing one, and expires sessions idle past their
// timeout.
func (ss *sessions) use(id string, timeout time.Duration, check bool, now time.Time) (map[string]string, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.byID {
		if now.Sub(s.lastUsed) > s.timeout {
			delete(ss.byID, k)
		}
	}
	s, ok := ss.byID[id]
	if !ok {
		if check {
			return nil, &serverError{code: 372, name: "SESSION_NOT_FOUND", msg: fmt.Sprintf("Session %s not found", id)}
		}
		if ss.byID == nil {
			ss.byID = map[string]*session{}
		}
		s = &session{settings: map[string]string{}}
		ss.byID[id] = s
	}
	s.timeout, s.lastUsed = timeout, now
	return maps.Clone(s.settings), nil
}

// set records assignments in session id (a DEFAULT value removes the
// setting); the session must exist (use opened it).
func (ss *sessions) set(id string, assign map[string]string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok {
		return
	}
	for k, v := range assign {
		if strings.EqualFold(v, "DEFAULT") {
			delete(s.settings, k)
		} else {
			s.settings[k] = v
		}
	}
}

// sessionTimeout reads session_timeout (seconds).
func sessionTimeout(v string) (time.Duration, error) {
	if v == "" {
		return defaultSessionTimeout, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, &serverError{code: 36, name: "BAD_ARGUMENTS", msg: fmt.Sprintf("Invalid session timeout: '%s'", v)}
	}
	if d := time.Duration(n) * time.Second; d <= maxSessionTimeout {
		return d, nil
	}
	return 0, &serverError{code: 36, name: "BAD_ARGUMENTS",
		msg: fmt.Sprintf("Session timeout '%s' is larger than max_session_timeout: %d", v, int(maxSessionTimeout.Seconds()))}
}

// parseSet reads the assignments of a SET statement: name = value, ...
// with values as literals (numbers, identifiers, 'quoted strings'), which
// the engine converts to each setting's type when they are applied.
func parseSet(stmt string) (map[string]string, error) {
	rest := strings.TrimSpace(stmt)
	if len(rest) < 3 || !strings.EqualFold(rest[:3], "SET") {
		return nil, fmt.Errorf("not a SET statement")
	}
	rest = strings.TrimRight(strings.TrimSpace(rest[3:]), "; \t\n")
	out := map[string]string{}
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return nil, &serverError{code: 62, name: "SYNTAX_ERROR", msg: "Syntax error: expected '=' in SET"}
		}
		name := strings.TrimSpace(rest[:eq])
		if !identifier(name) {
			return nil, &serverError{code: 62, name: "SYNTAX_ERROR", msg: fmt.Sprintf("Syntax error: %q is not a setting name", name)}
		}
		rest = strings.TrimSpace(rest[eq+1:])
		var value string
		if strings.HasPrefix(rest, "'") {
			var b strings.Builder
			i := 1
			for ; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					b.WriteByte(rest[i])
					continue
				}
				if c == '\'' {
					if i+1 < len(rest) && rest[i+1] == '\'' {
						b.WriteByte('\'')
						i++
						continue
					}
					break
				}
				b.WriteByte(c)
			}
			if i >= len(rest) {
				return nil, &serverError{code: 62, name: "SYNTAX_ERROR", msg: "Syntax error: unterminated string in SET"}
			}
			value, rest = b.String(), strings.TrimSpace(rest[i+1:])
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			value, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		out[name] = value
		if rest = strings.TrimSpace(rest); strings.HasPrefix(rest, ",") {
			rest = strings.TrimSpace(rest[1:])
		} else if rest != "" {
			return nil, &serverError{code: 62, name: "SYNTAX_ERROR", msg: "Syntax error: expected ',' in SET"}
		}
	}
	return out, nil
}

func identifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
