package chserver

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sora3web/telemetry/sinks/chdb"
)

// Session timeouts, as ClickHouse's defaults: session_timeout (seconds)
// defaults to 60 and may not exceed max_session_timeout, 3600.
const (
	defaultSessionTimeout = 60 * time.Second
	maxSessionTimeout     = 3600 * time.Second
)

// sessions holds the state of ClickHouse HTTP sessions (session_id): the
// settings their SET statements chose, which every later request of the
// session starts from, and the session's own engine connection
// (chdb.Session), where its statements run, so its temporary tables are
// its own. A session ends session_timeout after its last request ends
// (never while a request runs in it); ending closes its connection, which
// drops its temporary tables.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
}

type session struct {
	settings map[string]string
	timeout  time.Duration
	lastUsed time.Time
	// busy counts the requests running in the session.
	busy int
	// engine is the session's own connection, opened by its first
	// statement that reaches the engine; nil until then.
	engine *chdb.Session
}

// use returns session id and a copy of its settings, opening it unless
// check asks for an existing one, and marks it busy until release. It also
// returns the connections of sessions that expired, for the caller to close.
func (ss *sessions) use(id string, timeout time.Duration, check bool, now time.Time) (*session, map[string]string, []*chdb.Session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	expired := ss.expireLocked(now)
	s, ok := ss.byID[id]
	if !ok {
		if check {
			return nil, nil, expired, &serverError{code: 372, name: "SESSION_NOT_FOUND", msg: fmt.Sprintf("Session %s not found", id)}
		}
		if ss.byID == nil {
			ss.byID = map[string]*session{}
		}
		s = &session{settings: map[string]string{}}
		ss.byID[id] = s
	}
	s.timeout, s.lastUsed = timeout, now
	s.busy++
	return s, maps.Clone(s.settings), expired, nil
}

// release ends a request that use began; the session's timeout counts from
// now.
func (ss *sessions) release(s *session, now time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.busy--
	s.lastUsed = now
}

// connection returns the session's engine connection, opening it with open
// on first use.
func (ss *sessions) connection(s *session, open func() (*chdb.Session, error)) (*chdb.Session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.engine == nil {
		c, err := open()
		if err != nil {
			return nil, fmt.Errorf("opening the engine connection of a session: %w", err)
		}
		s.engine = c
	}
	return s.engine, nil
}

// expire removes the sessions idle past their timeout and returns their
// connections, for the caller to close.
func (ss *sessions) expire(now time.Time) []*chdb.Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.expireLocked(now)
}

func (ss *sessions) expireLocked(now time.Time) []*chdb.Session {
	var closing []*chdb.Session
	for id, s := range ss.byID {
		if s.busy == 0 && now.Sub(s.lastUsed) > s.timeout {
			delete(ss.byID, id)
			if s.engine != nil {
				closing = append(closing, s.engine)
			}
		}
	}
	return closing
}

// closeAll ends every session and closes their connections; for Shutdown,
// once no request runs.
func (ss *sessions) closeAll() {
	ss.mu.Lock()
	all := ss.byID
	ss.byID = nil
	ss.mu.Unlock()
	for _, s := range all {
		if s.engine != nil {
			s.engine.Close()
		}
	}
}

// set records assignments in session s (a DEFAULT value removes the
// setting).
func (ss *sessions) set(s *session, assign map[string]string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, v := range assign {
		if strings.EqualFold(v, "DEFAULT") {
			delete(s.settings, k)
		} else {
			s.settings[k] = v
		}
	}
}

// closeSessions closes the connections of ended sessions.
func closeSessions(conns []*chdb.Session) {
	for _, c := range conns {
		c.Close()
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
