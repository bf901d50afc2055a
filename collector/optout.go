package collector

// OptOuts is the consent registry ingest consults besides each event's
// own consent: an event whose user_id or anonymous_id is opted out is
// treated exactly like consent.analytics false (identifiers, IP and prompt
// stripped). It is called once per event on the hot path, so
// implementations must be cheap and safe for concurrent use (an in-memory
// set; internal/privacy.Registry).
type OptOuts interface {
	// OptedOut reports whether either identifier has opted out.
	OptedOut(userID, anonymousID string) bool
}

// Option changes a Server built by New.
type Option func(*Server)

// WithOptOuts makes ingest honour the opt-out registry o.
func WithOptOuts(o OptOuts) Option {
	return func(s *Server) { s.enr.optOuts = o }
}
