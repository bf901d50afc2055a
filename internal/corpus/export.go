package corpus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Export formats.
const (
	FormatJSONL   = "jsonl"
	FormatParquet = "parquet"
)

// ErrExport means the engine refused or failed the export.
var ErrExport = errors.New("prompt corpus export failed")

// Export is one export of the corpus over ClickHouse's HTTP interface,
// which produces the format itself (JSONEachRow or Parquet) and streams
// it: nothing is held whole in memory on either side.
type Export struct {
	// URL is the HTTP interface, e.g. http://127.0.0.1:8123.
	URL string
	// User and Password authenticate (basic auth); Password may be empty.
	User, Password string
	// Database holds prompt_corpus.
	Database string
	// Since exports the days from today minus Since (whole days, rounded
	// up), today included.
	Since time.Duration
	// Format is FormatJSONL or FormatParquet.
	Format string
	// Client makes the requests; nil means a client without timeout.
	Client *http.Client
}

// Progress is how far an export got.
type Progress struct {
	// Rows is the rows written so far; for Parquet, whose rows cannot be
	// counted in the stream, it is Total once done.
	Rows int64
	// Total is the rows the export holds, counted before it started.
	Total int64
	// Bytes is the bytes written so far.
	Bytes int64
	// Elapsed is the time since the export started.
	Elapsed time.Duration
	// Done is true on the last report.
	Done bool
}

func (e Export) days() int {
	d := int((e.Since + 24*time.Hour - 1) / (24 * time.Hour))
	return max(d, 1)
}

// Validate names the wrong field.
func (e Export) Validate() error {
	var errs []error
	if _, err := url.Parse(e.URL); err != nil || !strings.HasPrefix(e.URL, "http") {
		errs = append(errs, fmt.Errorf("clickhouse url: must be http(s)://host:port, got %q", e.URL))
	}
	if e.Format != FormatJSONL && e.Format != FormatParquet {
		errs = append(errs, fmt.Errorf("format: must be %s or %s, got %q", FormatJSONL, FormatParquet, e.Format))
	}
	if e.Since <= 0 {
		errs = append(errs, errors.New("since: must be > 0 (e.g. 30d, 72h)"))
	}
	if e.Database == "" {
		errs = append(errs, errors.New("database: required"))
	}
	return errors.Join(errs...)
}

// where selects the exported days.
func (e Export) where() string {
	return fmt.Sprintf("day >= toDate(now('UTC')) - %d", e.days()-1)
}

// Run streams the export to w and calls progress about twice a second
// and once at the end.
func (e Export) Run(ctx context.Context, w io.Writer, progress func(Progress)) error {
	if err := e.Validate(); err != nil {
		return err
	}
	start := time.Now()
	total, err := e.query(ctx, fmt.Sprintf("SELECT count() FROM %s.prompt_corpus WHERE %s FORMAT TSV", e.Database, e.where()))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(total, 64))
	total.Close()
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: counting rows: %q", ErrExport, b)
	}
	format := "JSONEachRow"
	if e.Format == FormatParquet {
		format = "Parquet"
	}
	body, err := e.query(ctx, fmt.Sprintf("SELECT %s FROM %s.prompt_corpus WHERE %s ORDER BY day, prompt FORMAT %s",
		strings.Join(Columns, ", "), e.Database, e.where(), format))
	if err != nil {
		return err
	}
	defer body.Close()
	p := Progress{Total: n}
	report := func(done bool) {
		p.Elapsed, p.Done = time.Since(start), done
		if done && e.Format == FormatParquet {
			p.Rows = n
		}
		if progress != nil {
			progress(p)
		}
	}
	buf := make([]byte, 256<<10)
	last := time.Now()
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return fmt.Errorf("writing the export: %w", err)
			}
			p.Bytes += int64(k)
			if e.Format == FormatJSONL {
				p.Rows += int64(strings.Count(string(buf[:k]), "\n"))
			}
			if time.Since(last) >= 500*time.Millisecond {
				last = time.Now()
				report(false)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: reading from the engine: %w", ErrExport, rerr)
		}
	}
	report(true)
	return nil
}

// query posts sql to the HTTP interface and returns the answer's body.
func (e Export) query(ctx context.Context, sql string) (io.ReadCloser, error) {
	u := strings.TrimRight(e.URL, "/") + "/?" + url.Values{"database": {e.Database}, "max_execution_time": {"0"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(sql))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExport, err)
	}
	if e.User != "" {
		req.SetBasicAuth(e.User, e.Password)
	}
	c := e.Client
	if c == nil {
		c = &http.Client{}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: calling %s: %w", ErrExport, e.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w: %s: %s", ErrExport, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// FormatProgress renders p as the CLI's progress line.
func FormatProgress(p Progress) string {
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Rows) / float64(p.Total)
	}
	state := "exporting"
	if p.Done {
		state = "exported"
	}
	return fmt.Sprintf("%s %d/%d rows (%.0f%%), %.1f MiB, %s", state, p.Rows, p.Total, pct, float64(p.Bytes)/(1<<20), p.Elapsed.Round(100*time.Millisecond))
}

// ParseSince reads --since: whole days as "30d", or a Go duration ("72h").
func ParseSince(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("since: %q: days must be a positive whole number, e.g. 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("since: %q: must be days (30d) or a positive duration (72h)", s)
	}
	return v, nil
}
