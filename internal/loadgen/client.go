package loadgen

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// conn is one sender's HTTP/1.1 keep-alive connection, as a load
// generator's own client keeps it (wrk and h2load do the same): the request
// head is built into a reused buffer and leaves with the body in one write,
// and the answer is parsed by net/http's ReadResponse. net/http's Client
// spends two goroutines and several channel hand-offs per request; on the
// bench machine that was a third of the CPU in a beacon run, taken from the
// collector it measures. A conn is not safe for concurrent use: each sender
// owns one. After an error it is closed, and the next request dials again.
type conn struct {
	addr    string      // host:port
	host    string      // the Host header
	prefix  string      // the base URL's path, put before every request's
	tls     *tls.Config // nil for http
	timeout time.Duration

	c    net.Conn
	br   *bufio.Reader
	head []byte
	resp bytes.Buffer
}

// newConn returns an unconnected conn to the server of base, an http or
// https URL. tlsConf, when not nil, replaces the default TLS settings.
func newConn(base string, timeout time.Duration, tlsConf *tls.Config) (*conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	c := &conn{host: u.Host, prefix: strings.TrimSuffix(u.Path, "/"), timeout: timeout}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		c.tls = &tls.Config{}
		if tlsConf != nil {
			c.tls = tlsConf.Clone()
		}
		if c.tls.ServerName == "" {
			c.tls.ServerName = u.Hostname()
		}
	default:
		return nil, fmt.Errorf("url: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("url: no host")
	}
	c.addr = net.JoinHostPort(u.Hostname(), port)
	return c, nil
}

// fresh returns an unconnected conn to the same server.
func (c *conn) fresh() *conn {
	return &conn{addr: c.addr, host: c.host, prefix: c.prefix, tls: c.tls, timeout: c.timeout}
}

// post sends body to path (below the base URL's path) with the headers hdr
// (name, value pairs) and returns the status and the response body, valid
// until the next call.
func (c *conn) post(path string, hdr [][2]string, body []byte) (int, []byte, error) {
	if c.c == nil {
		if err := c.dial(); err != nil {
			return 0, nil, err
		}
	}
	h := append(c.head[:0], "POST "...)
	h = append(h, c.prefix...)
	h = append(h, path...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, c.host...)
	h = append(h, "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(body)), 10)
	for _, kv := range hdr {
		h = append(h, "\r\n"...)
		h = append(h, kv[0]...)
		h = append(h, ": "...)
		h = append(h, kv[1]...)
	}
	h = append(h, "\r\n\r\n"...)
	c.head = h

	if err := c.c.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, nil, c.fail(err)
	}
	bufs := net.Buffers{h, body}
	if _, err := bufs.WriteTo(c.c); err != nil {
		return 0, nil, c.fail(fmt.Errorf("writing the request: %w", err))
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, nil, c.fail(fmt.Errorf("reading the response: %w", err))
	}
	c.resp.Reset()
	_, err = c.resp.ReadFrom(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, nil, c.fail(fmt.Errorf("reading the response body: %w", err))
	}
	if res.Close {
		c.close()
	}
	return res.StatusCode, c.resp.Bytes(), nil
}

func (c *conn) dial() error {
	d := net.Dialer{Timeout: c.timeout}
	nc, err := d.Dial("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", c.addr, err)
	}
	if c.tls != nil {
		tc := tls.Client(nc, c.tls)
		_ = tc.SetDeadline(time.Now().Add(c.timeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return fmt.Errorf("TLS handshake with %s: %w", c.addr, err)
		}
		nc = tc
	}
	c.c = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// fail closes the connection after err, which it returns.
func (c *conn) fail(err error) error {
	c.close()
	return err
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}
