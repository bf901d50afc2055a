package collector

import (
	"time"

	"github.com/sora3web/telemetry/schema"
	"github.com/sora3web/telemetry/transform"
)

// requestInfo is what enrichment takes from the HTTP request, read once.
type requestInfo struct {
	receivedAt time.Time
	userAgent  string
	ip         string // anonymised
	optOut     bool   // DNT or GPC, where honoured
	source     string
}

// enricher adds what the server knows to an event and removes what must
// not be kept.
type enricher struct {
	ua    *transform.UAParser
	scrub *transform.Scrubber
	// optOuts, when set, is the consent registry (WithOptOuts).
	optOuts OptOuts
}

// enrich turns a valid event into the published form. It returns false when
// the event must not be published (from a user under 13).
func (e *enricher) enrich(ev *schema.Event, ri *requestInfo) (schema.Enriched, bool) {
	if ev.Under13 {
		return schema.Enriched{}, false
	}
	out := schema.Enriched{Event: *ev, ReceivedAt: ri.receivedAt, Source: ri.source, IP: ri.ip}
	out.SchemaVersion = schema.Version
	out.Timestamp = ev.OccurredAt.Add(ri.receivedAt.Sub(ev.SentAt)).UTC()
	out.OccurredAt, out.SentAt = ev.OccurredAt.UTC(), ev.SentAt.UTC()
	ua := ev.Context.UserAgent
	if ua == "" {
		ua = ri.userAgent
	}
	var parsed bool
	out.Device, parsed = e.ua.Lookup(ua)
	if parsed {
		out.Context.UserAgent = "" // only what the policy lists is kept: the parsed fields
	} else {
		out.Context.UserAgent = ua // device.pending: the consumer parses it and drops it
	}
	c, p := &out.Context, &out.Properties
	c.PageURL, c.Referrer = e.scrub.URL(c.PageURL), e.scrub.URL(c.Referrer)
	if p.ErrorMessage != "" || p.ErrorStack != "" {
		p.ErrorMessage, p.ErrorStack = e.scrub.Text(p.ErrorMessage), e.scrub.Text(p.ErrorStack)
	}
	if ri.optOut || (ev.Consent.Analytics != nil && !*ev.Consent.Analytics) ||
		(e.optOuts != nil && (e.optOuts.OptedOut(ev.UserID, ev.AnonymousID) ||
			// an alias's earlier id may be either kind
			(ev.PreviousID != "" && e.optOuts.OptedOut(ev.PreviousID, ev.PreviousID)))) {
		out.OptedOut = true
		out.UserID, out.AnonymousID, out.SessionID = "", "", ""
		out.Seq, out.Context.UnloadSeq = 0, 0 // numbers of a session that is no longer named
		out.PreviousID, out.GroupID = "", ""
		out.Properties.Prompt = ""
		out.IP = ""
	}
	return out, true
}
