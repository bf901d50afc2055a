package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// privacyFlags are the flags of `telemetry privacy ...`.
type privacyFlags struct {
	userID, anonymousID string
	url, token          string
	ndjson              bool
	timeout             time.Duration
	// correct's flags
	plan, from, to, attachTo, detachFrom string
}

// newPrivacyCmd is the client of the privacy admin API (internal/privacy).
// With no flags but the subject it talks to the process `make run`
// started: http://<admin.listen> with admin.token, both read from the
// configuration like every other command (defaults: 127.0.0.1:8081, the
// development token).
func newPrivacyCmd(g *globalFlags) *cobra.Command {
	var f privacyFlags
	root := &cobra.Command{
		Use:   "privacy",
		Short: "Data-subject requests over the admin API: export, delete, status, opt-out, opt-in, correct",
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.userID, "user-id", "", "the subject's user_id")
	pf.StringVar(&f.anonymousID, "anonymous-id", "", "the subject's anonymous_id")
	pf.StringVar(&f.url, "admin-url", "", "admin API base URL (default http://<admin.listen>)")
	pf.StringVar(&f.token, "token", "", "admin token (default admin.token of the configuration)")
	pf.DurationVar(&f.timeout, "timeout", 10*time.Minute, "bound of the whole call")
	calls := []struct {
		name, short, method, path string
	}{
		{"export", "Print everything stored for the subject (JSON; --ndjson streams one row per line)", http.MethodGet, "/v1/privacy/export"},
		{"delete", "Delete the subject from every table and keep it deleted (tombstone)", http.MethodPost, "/v1/privacy/delete"},
		{"status", "Rows stored per table, tombstoned, opted out", http.MethodGet, "/v1/privacy/status"},
		{"opt-out", "Add the subject to the opt-out registry (ingest strips its identifiers)", http.MethodPost, "/v1/privacy/opt-out"},
		{"opt-in", "Remove the subject from the opt-out registry", http.MethodPost, "/v1/privacy/opt-in"},
		{"correct", "Correct the subject's plan over a time range (--plan, --from, --to), or attach an anonymous_id's events to a user (--attach-to) or detach them (--detach-from)", http.MethodPost, "/v1/privacy/correct"},
	}
	for _, c := range calls {
		cmd := &cobra.Command{
			Use:   c.name,
			Short: c.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return f.call(cmd, g, c.method, c.path)
			},
		}
		switch c.name {
		case "export":
			cmd.Flags().BoolVar(&f.ndjson, "ndjson", false, "stream NDJSON lines {table, row}")
		case "correct":
			fl := cmd.Flags()
			fl.StringVar(&f.plan, "plan", "", "the right plan (free or pro) of the subject's events")
			fl.StringVar(&f.from, "from", "", "with --plan: first event time corrected, RFC 3339 (default: the first event)")
			fl.StringVar(&f.to, "to", "", "with --plan: end of the range, exclusive, RFC 3339 (default: now)")
			fl.StringVar(&f.attachTo, "attach-to", "", "with --anonymous-id: the user_id its events without one get")
			fl.StringVar(&f.detachFrom, "detach-from", "", "with --anonymous-id: the user_id removed from its events")
		}
		root.AddCommand(cmd)
	}
	return root
}

// errRequest means the admin API refused or failed a call.
var errRequest = errors.New("admin API call failed")

func (f *privacyFlags) call(cmd *cobra.Command, g *globalFlags, method, path string) error {
	if (f.userID == "") == (f.anonymousID == "") {
		return errors.New("give exactly one of --user-id or --anonymous-id")
	}
	base, token := f.url, f.token
	if base == "" || token == "" {
		cfg, err := g.load()
		if err != nil {
			return err
		}
		if base == "" {
			base = "http://" + cfg.Admin.Listen
		}
		if token == "" {
			token = cfg.Admin.Token
		}
	}
	key, id := "user_id", f.userID
	if f.anonymousID != "" {
		key, id = "anonymous_id", f.anonymousID
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	target := strings.TrimRight(base, "/") + path
	var body io.Reader
	if method == http.MethodGet {
		target += "?" + url.Values{key: {id}}.Encode()
	} else {
		fields := map[string]string{key: id}
		for k, v := range map[string]string{"plan": f.plan, "from": f.from, "to": f.to, "attach_to": f.attachTo, "detach_from": f.detachFrom} {
			if v != "" {
				fields[k] = v
			}
		}
		b, _ := json.Marshal(fields)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.ndjson {
		req.Header.Set("Accept", "application/x-ndjson")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s (is `telemetry serve` running with admin.enabled?): %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%w: %s: %s", errRequest, resp.Status, strings.TrimSpace(string(msg)))
	}
	if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	return nil
}
