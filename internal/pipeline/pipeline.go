// Package pipeline assembles the parts of the telemetry pipeline that one
// process runs, from the configuration: the embedded ClickHouse engine,
// migrations, the bus (the local log, or Kafka with a local spool), the
// consumer and the ingest endpoints. It owns their order of start and of
// graceful shutdown, and nothing else: each part's behaviour lives in its
// own package.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sora3web/telemetry/bus"
	"github.com/sora3web/telemetry/bus/broker"
	"github.com/sora3web/telemetry/bus/wal"
	"github.com/sora3web/telemetry/collector"
	"github.com/sora3web/telemetry/dashboards"
	"github.com/sora3web/telemetry/internal/audit"
	"github.com/sora3web/telemetry/internal/chconn"
	"github.com/sora3web/telemetry/internal/config"
	"github.com/sora3web/telemetry/internal/corpus"
	"github.com/sora3web/telemetry/internal/history"
	"github.com/sora3web/telemetry/internal/privacy"
	"github.com/sora3web/telemetry/schema/migrations"
	"github.com/sora3web/telemetry/sinks/chdb"
	"github.com/sora3web/telemetry/sinks/chserver"
	"github.com/sora3web/telemetry/sinks/consumer"
	"github.com/sora3web/telemetry/transform"
)

// Cursor names of the local log's readers.
const (
	consumerCursor = "clickhouse"
)

// Pipeline is the set of running parts. Build it with New, run it with
// Start, stop it with Shutdown.
type Pipeline struct {
	cfg config.Config
	log *slog.Logger

	// Metrics is the process's metric reader; when set, the recorder
	// writes its snapshots into ClickHouse (history.*). Set it before Start.
	Metrics history.Source

	// Handlers are mounted on the ingest server before it starts (metrics,
	// the SDK). Set them before Start. The dashboards have their own
	// listener (dashboard.listen).
	Handlers map[string]http.Handler

	// stack holds the stop of every part started, in start order;
	// Shutdown runs them in reverse.
	stack []part

	engine *chdb.Engine
	// dashConn is the dashboards' connection: p.conn, or on the embedded
	// engine one without the pipeline's max_execution_time 0.
	dashConn  driver.Conn
	chsrv     *chserver.Server
	conn      driver.Conn
	bus       *wal.Log
	deadLog   *wal.Log
	publisher bus.Publisher
	kafkaPub  *broker.KafkaPublisher
	spool     *bus.SpoolPublisher
	consumer  *consumer.Consumer
	ingest    *collector.Server
	privacy   *privacy.Service // admin API + tombstone/opt-out registries
	corpus    *corpus.Job      // fills the anonymised prompt corpus
	side      *http.Server
	dash      *dashboards.Server
}

// part is how to stop one started part of the pipeline.
type part struct {
	name string
	stop func(context.Context) error
}

// started records a part that Start brought up; Shutdown stops the parts
// in the reverse order, so each stops before what it uses.
func (p *Pipeline) started(name string, stop func(context.Context) error) {
	p.stack = append(p.stack, part{name: name, stop: stop})
}

// closer adapts a Close() error to a part's stop.
func closer(close func() error) func(context.Context) error {
	return func(context.Context) error { return close() }
}

// New checks cfg and prepares a pipeline; it does no I/O.
func New(cfg config.Config, log *slog.Logger) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pipeline{cfg: cfg, log: log, Handlers: map[string]http.Handler{}}, nil
}

// ClickHouseConfig is the connection the consumer and migrations use: the
// embedded engine's HTTP interface when it is enabled, else clickhouse.*.
func (p *Pipeline) ClickHouseConfig() chconn.Config {
	c := p.cfg.ClickHouse
	if p.cfg.Embedded.Enabled {
		c.Protocol, c.Addr, c.Password, c.Compression = "http", []string{p.cfg.Embedded.Listen}, "", "none"
		if p.chsrv != nil {
			if addr, err := p.chsrv.Addr(); err == nil {
				c.Addr = []string{addr}
			}
		}
	}
	return c
}

// ownClickHouseConfig is the connection of the pipeline's own work
// (migrations, privacy, the consumer): on the embedded engine its reads
// set max_execution_time 0, so embedded.max_query_time, meant for
// analysts, does not cut a privacy export or a schema check short.
func (p *Pipeline) ownClickHouseConfig() chconn.Config {
	c := p.ClickHouseConfig()
	if p.engine != nil {
		c.Settings = maps.Clone(c.Settings)
		if c.Settings == nil {
			c.Settings = map[string]string{}
		}
		c.Settings["max_execution_time"] = "0"
	}
	return c
}

// Conn is the ClickHouse connection, after Start (nil when no part needs it).
func (p *Pipeline) Conn() driver.Conn { return p.conn }

// AdminAddr is the privacy admin API's address, after Start ("" when it
// does not run).
func (p *Pipeline) AdminAddr() string {
	if p.privacy == nil {
		return ""
	}
	return p.privacy.Addr()
}

// Privacy is the privacy service (registries and admin API), after Start
// (nil when the process does not talk to ClickHouse).
func (p *Pipeline) Privacy() *privacy.Service { return p.privacy }

// IngestAddr is the ingest server's address, after Start.
func (p *Pipeline) IngestAddr() string {
	if p.ingest == nil {
		return ""
	}
	return p.ingest.Addr()
}

// Start brings the parts up in order: engine, migrations, privacy
// registries and admin API, bus, consumer, ingest. On error it stops what it started.
func (p *Pipeline) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = p.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	s := p.cfg.Serve
	if p.cfg.RunsEngine() {
		if err := p.startEngine(ctx); err != nil {
			return err
		}
	}
	if s.Consumer || s.Migrate {
		if p.conn, err = chconn.Open(p.ownClickHouseConfig()); err != nil {
			return err
		}
		p.started("clickhouse connection", closer(p.conn.Close))
		// The dashboards read as analysts do: on the embedded engine, over
		// a connection of their own that the server's max_query_time bounds.
		p.dashConn = p.conn
		if p.engine != nil {
			if p.dashConn, err = chconn.Open(p.ClickHouseConfig()); err != nil {
				return err
			}
			p.started("dashboards' clickhouse connection", closer(p.dashConn.Close))
		}
	}
	if s.Migrate {
		if err := p.migrate(ctx); err != nil {
			return err
		}
	} else if p.conn != nil {
		if err := p.checkSchema(ctx); err != nil {
			return err
		}
	}
	if err := p.startPrivacy(ctx); err != nil {
		return err
	}
	if err := p.startBus(ctx); err != nil {
		return err
	}
	if s.Consumer {
		if err := p.startConsumer(ctx); err != nil {
			return err
		}
		if err := p.startCorpus(ctx); err != nil {
			return err
		}
	}
	if err := p.startHistory(ctx); err != nil {
		return err
	}
	if err := p.startDashboards(ctx); err != nil {
		return err
	}
	if !s.Ingest {
		if err := p.startSideServer(ctx); err != nil {
			return err
		}
	} else {
		if p.ingest, err = collector.New(p.cfg.Ingest, p.publisher, p.log, p.ingestOptions()...); err != nil {
			return err
		}
		for pattern, h := range p.Handlers {
			p.ingest.Mount(pattern, h)
		}
		if err := p.ingest.Start(ctx); err != nil {
			return err
		}
		p.started("ingest", p.ingest.Shutdown)
	}
	p.log.Info("pipeline started", "bus", p.cfg.Bus, "ingest", p.IngestAddr(), "dashboard", p.DashboardAddr(), "embedded_clickhouse", p.cfg.Embedded.Enabled,
		"consumer", s.Consumer, "data_dir", p.cfg.DataDir)
	return nil
}

// startDashboards serves the dashboards on their own staff-only listener
// (dashboard.listen), never on ingest's: it needs ClickHouse.
func (p *Pipeline) startDashboards(ctx context.Context) error {
	if p.conn == nil || !p.cfg.Dashboard.Enabled {
		return nil
	}
	dc := p.cfg.Dashboard
	dc.Database, dc.Log = p.cfg.ClickHouse.Database, p.log
	srv, err := dashboards.NewServer(dc, p.dashConn)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	p.dash = srv
	p.started("dashboards", srv.Shutdown)
	attrs := []any{"url", "http://" + srv.Addr() + "/dashboard/"}
	if dc.Token == dashboards.DevToken { // public knowledge; a real token is never logged
		attrs = append(attrs, "dev_token", dashboards.DevToken)
	}
	p.log.Info("dashboards serving (staff only: sign in at /dashboard/login with dashboard.token)", attrs...)
	return nil
}

// startHistory records the process's metrics into ClickHouse every
// history.interval (the dashboards' pipeline page); it needs ClickHouse
// and the metric reader.
func (p *Pipeline) startHistory(ctx context.Context) error {
	if p.conn == nil || p.Metrics == nil || !p.cfg.History.Enabled {
		return nil
	}
	rec, err := history.New(p.cfg.History, p.Metrics, p.conn, p.cfg.ClickHouse.Database, p.log)
	if err != nil {
		return err
	}
	if err := rec.Start(ctx); err != nil {
		return err
	}
	p.started("metric history recorder", rec.Shutdown)
	return nil
}

// DashboardAddr is the dashboards' address, after Start ("" when they do
// not run).
func (p *Pipeline) DashboardAddr() string {
	if p.dash == nil {
		return ""
	}
	return p.dash.Addr()
}

// startSideServer serves the handlers (/metrics) and health on
// serve.metrics_listen when no ingest server carries them.
func (p *Pipeline) startSideServer(ctx context.Context) error {
	mux := http.NewServeMux()
	for pattern, h := range p.Handlers {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", p.cfg.Serve.MetricsListen)
	if err != nil {
		return fmt.Errorf("listening on serve.metrics_listen %s: %w", p.cfg.Serve.MetricsListen, err)
	}
	p.side = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{}) // closed when the server's goroutine returns
	go func() {
		defer close(done)
		if err := p.side.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("metrics server stopped", "err", err)
		}
	}()
	side := p.side
	p.started("metrics server", func(ctx context.Context) error {
		err := side.Shutdown(ctx)
		<-done
		return err
	})
	p.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// startPrivacy loads the tombstone and opt-out registries and serves the
// admin API (admin.enabled). It needs ClickHouse: a process that does not
// talk to it (ingest alone) runs without registries.
func (p *Pipeline) startPrivacy(ctx context.Context) error {
	if p.conn == nil {
		return nil
	}
	svc, err := privacy.New(p.cfg.Admin, p.conn, privacy.Tables{Database: p.cfg.ClickHouse.Database, Cluster: p.cfg.ClickHouse.Cluster}, p.log)
	if err != nil {
		return err
	}
	svc.Handle("/v1/audit", audit.Handler(p.conn, p.cfg.ClickHouse.Database, p.cfg.Audit.Grace))
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("starting the privacy registries and admin API: %w", err)
	}
	p.privacy = svc
	p.started("privacy registries and admin API", svc.Shutdown)
	return p.startAuditMonitor(ctx)
}

// startAuditMonitor computes the completeness metrics where the pipeline
// talks to ClickHouse.
func (p *Pipeline) startAuditMonitor(ctx context.Context) error {
	if !p.cfg.Audit.Enabled || p.cfg.Audit.MetricsInterval == 0 {
		return nil
	}
	m, err := audit.NewMonitor(p.cfg.Audit, p.conn, p.cfg.ClickHouse.Database, p.log)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	p.started("audit monitor", m.Shutdown)
	return nil
}

// ingestOptions hands ingest the opt-out registry when it runs, and the
// audit when it is on.
func (p *Pipeline) ingestOptions() []collector.Option {
	var opts []collector.Option
	if p.privacy != nil {
		opts = append(opts, collector.WithOptOuts(p.privacy.Registry()))
	}
	if p.cfg.Audit.Enabled {
		opts = append(opts, collector.WithAudit(auditFlushInterval))
	}
	return opts
}

// auditFlushInterval is how often ingest publishes the audit counts no
// answer waits for (refused requests, rejections, drops).
const auditFlushInterval = 5 * time.Second

func (p *Pipeline) startEngine(ctx context.Context) error {
	dir := filepath.Join(p.cfg.DataDir, "clickhouse")
	engine, err := chdb.Open(chdb.Config{Path: dir, LibPath: p.cfg.Embedded.LibPath, MergeNice: p.cfg.Embedded.MergeNice})
	if err != nil {
		return fmt.Errorf("opening the embedded ClickHouse engine in %s (run `make chdb` to fetch libchdb.so): %w", dir, err)
	}
	p.engine = engine
	p.started("clickhouse engine", closer(engine.Close))
	srv, err := chserver.New(chserver.Config{Listen: p.cfg.Embedded.Listen, DataDir: dir, User: p.cfg.ClickHouse.User,
		MaxQueryTime: p.cfg.Embedded.MaxQueryTime, Connections: p.cfg.Embedded.Connections, Logger: p.log}, engine)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return fmt.Errorf("starting the embedded ClickHouse HTTP interface on %s: %w", p.cfg.Embedded.Listen, err)
	}
	p.chsrv = srv
	p.started("clickhouse http interface", srv.Shutdown)
	addr, _ := srv.Addr()
	p.log.Info("embedded ClickHouse serving", "addr", addr, "data", dir)
	return nil
}

// migrator is the migrator for the configured database and cluster.
func (p *Pipeline) migrator() (*migrations.Migrator, error) {
	return migrations.New(p.conn, migrations.Options{Database: p.cfg.ClickHouse.Database, Cluster: p.cfg.ClickHouse.Cluster, Retention: p.cfg.Retention})
}

func (p *Pipeline) migrate(ctx context.Context) error {
	m, err := p.migrator()
	if err != nil {
		return err
	}
	plan, err := m.Apply(ctx)
	if err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	p.log.Info("migrations applied", "new", len(plan.Migrations), "retention_changes", len(plan.Retention))
	return nil
}

// ErrSchemaBehind means the ClickHouse schema lacks migrations that this
// binary needs and serve.migrate is off (as with `telemetry consume`).
var ErrSchemaBehind = errors.New("the ClickHouse schema is behind this binary: run `telemetry migrate` first (or serve with serve.migrate=true)")

// checkSchema fails fast, with what to do, when migrations are pending.
func (p *Pipeline) checkSchema(ctx context.Context) error {
	m, err := p.migrator()
	if err != nil {
		return err
	}
	plan, err := m.Plan(ctx)
	if err != nil {
		return fmt.Errorf("checking the ClickHouse schema of %s: %w", p.cfg.ClickHouse.Database, err)
	}
	if n := len(plan.Migrations); n > 0 {
		first := plan.Migrations[0]
		return fmt.Errorf("%w: database %s lacks %d migration(s), the first %04d_%s", ErrSchemaBehind, p.cfg.ClickHouse.Database, n, first.Version, first.Name)
	}
	return nil
}

// startBus opens the local log and the publisher the bus mode needs.
//
// The local log has one reader at a time: the consumer when it is the bus
// (bus=log), the Kafka forwarder when it is the spool (bus=kafka). A
// restart in the other mode on the same data hands the old reader's
// position to the new one (wal.HandOver): records the old reader had not
// delivered are delivered by the new one, those it had are not delivered
// again, and no stale cursor holds the log's segments for ever.
func (p *Pipeline) startBus(ctx context.Context) error {
	wcfg := p.cfg.WAL
	wcfg.Dir = p.cfg.WALDir()
	needLog := p.cfg.Bus == "log" || p.cfg.Spool.Enabled
	if needLog {
		if err := bus.AdoptLegacyLogID(p.cfg.DataDir, wcfg.Dir); err != nil {
			return err
		}
		l, err := wal.Open(wcfg, p.log.With("wal", "bus"))
		if err != nil {
			return fmt.Errorf("opening the local log: %w", err)
		}
		p.bus = l
		p.started("local log", closer(l.Close))
		from, to := bus.SpoolCursor, consumerCursor
		if p.cfg.Bus != "log" {
			from, to = to, from
		}
		if err := l.HandOver(from, to); err != nil {
			return fmt.Errorf("giving the local log to its reader: %w", err)
		}
	}
	if p.cfg.Bus == "log" {
		p.publisher = bus.NewLogPublisher(p.bus)
		return nil
	}
	kp, err := broker.NewKafkaPublisher(p.cfg.Kafka, p.log)
	if err != nil {
		return err
	}
	if err := kp.Start(ctx); err != nil {
		return err
	}
	p.started("kafka publisher", kp.Shutdown)
	p.kafkaPub, p.publisher = kp, kp
	if p.cfg.Spool.Enabled {
		sp, err := bus.NewSpoolPublisher(p.cfg.Spool.SpoolConfig, kp, p.bus, p.log.With("component", "spool"))
		if err != nil {
			return err
		}
		if err := sp.Start(ctx); err != nil {
			return err
		}
		p.started("spool forwarder", sp.Shutdown)
		p.spool, p.publisher = sp, sp
	}
	return nil
}

func (p *Pipeline) startConsumer(ctx context.Context) error {
	src, dlq, err := p.consumerBus()
	if err != nil {
		return err
	}
	// With the engine in this process, batches go to it directly as
	// Native blocks; otherwise over clickhouse-go to the server.
	var sink consumer.Sink = consumer.NewClickHouseSink(p.conn, p.cfg.ClickHouse.Database)
	if p.engine != nil {
		// Connections of the consumer's own: its inserts run beside the
		// queries of the engine's HTTP interface instead of queueing
		// behind them, and its own questions (stored offsets, audit rows)
		// beside its inserts.
		var conns [2]*chdb.Session
		for i, name := range []string{"consumer's engine connection", "consumer's engine query connection"} {
			sess, err := p.engine.OpenSession()
			if err != nil {
				return errors.Join(fmt.Errorf("opening the %s: %w", name, err), src.Close(), dlq.Close())
			}
			p.started(name, closer(sess.Close))
			conns[i] = sess
		}
		sink = consumer.NewEngineSink(conns[0], conns[1], p.engine.Path(), p.cfg.ClickHouse.Database)
	}
	if p.consumer, err = consumer.New(p.cfg.Consumer, src, dlq, sink, p.log); err != nil {
		return errors.Join(err, src.Close(), dlq.Close())
	}
	if err := p.consumer.SetAudit(p.cfg.Audit); err != nil {
		return err
	}
	if p.privacy != nil {
		if err := p.consumer.SetFilter(p.privacy.Registry()); err != nil {
			return err
		}
		p.privacy.SetBarrier(p.consumer.Barrier)
	}
	if err := p.consumer.Start(ctx); err != nil {
		return err
	}
	p.started("consumer", p.consumer.Shutdown)
	return nil
}

// startCorpus starts the job that fills the anonymised prompt corpus
// beside the consumer, when corpus.enabled.
func (p *Pipeline) startCorpus(ctx context.Context) error {
	if !p.cfg.Corpus.Enabled {
		return nil
	}
	scrub, err := transform.NewScrubber(p.cfg.Ingest.Scrub)
	if err != nil {
		return err
	}
	job, err := corpus.New(p.cfg.Corpus, p.conn, corpus.Source{Database: p.cfg.ClickHouse.Database, MinPromptDays: p.cfg.Retention.MinPromptDays()}, scrub, p.log)
	if err != nil {
		return err
	}
	if err := job.Start(ctx); err != nil {
		return err
	}
	p.corpus = job
	p.started("prompt corpus job", job.Shutdown)
	return nil
}

// Corpus is the prompt corpus job, after Start (nil when it does not run).
func (p *Pipeline) Corpus() *corpus.Job { return p.corpus }

// consumerBus is where the consumer reads and writes dead letters: the
// local log and a dead-letter log beside it (bus=log), or the events
// topic's consumer group and the dead-letter topic (bus=kafka).
func (p *Pipeline) consumerBus() (bus.Source, bus.DeadLetters, error) {
	if p.cfg.Bus != "log" {
		src, err := broker.NewReader(p.cfg.Kafka, p.cfg.Consumer.ReaderConfig(), p.log.With("component", "consumer"))
		if err != nil {
			return nil, nil, err
		}
		dlq, err := broker.NewDeadLetters(p.cfg.Kafka)
		if err != nil {
			return nil, nil, err
		}
		return src, dlq, nil
	}
	src, err := bus.NewLogReader(p.bus, consumerCursor, bus.LogTopic(p.bus))
	if err != nil {
		return nil, nil, err
	}
	dcfg := p.cfg.WAL // the wal: settings (fsync, sizes), in a directory of its own
	dcfg.Dir, dcfg.Cursors = filepath.Join(p.cfg.DataDir, "dead-letters"), nil
	if p.deadLog, err = wal.Open(dcfg, p.log.With("wal", "dead-letters")); err != nil {
		return nil, nil, fmt.Errorf("opening the dead-letter log: %w", err)
	}
	p.started("dead-letter log", closer(p.deadLog.Close))
	return src, bus.NewLogWriter(p.deadLog), nil
}

// Shutdown stops every part Start brought up, in the reverse order of
// their start, within ctx: ingest (or the metrics server) stops accepting
// and drains its requests, the consumer flushes its batch and commits, the
// spool forwarder and the Kafka publisher stop, the logs close, then the
// privacy registries, the ClickHouse connection and the engine. A part
// that fails to stop does not keep the others running. It is safe before
// Start and twice.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	var errs []error
	for len(p.stack) > 0 {
		pt := p.stack[len(p.stack)-1]
		p.stack = p.stack[:len(p.stack)-1]
		if err := pt.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the %s: %w", pt.name, err))
		}
	}
	p.side, p.privacy, p.corpus = nil, nil, nil
	p.ingest, p.spool, p.kafkaPub, p.consumer, p.bus, p.deadLog, p.conn, p.dashConn, p.chsrv, p.engine = nil, nil, nil, nil, nil, nil, nil, nil, nil, nil
	return errors.Join(errs...)
}
