// Package loadgen opens connections to a server that answers each one with
// a fixed reply and closes it (a command per connection), and measures how
// many it completes per second and how long each takes.
//
// A connection counts from the start of the dial to end of file. Its reply
// must equal the expected bytes exactly; anything else is a failure. Every
// run is bounded both in time and in number of connections.
package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config says what to load and for how long.
type Config struct {
	Addr        string        // host:port, or an absolute path for a unix socket
	Concurrency int           // connections in flight at once
	Duration    time.Duration // no connection is started after this much time
	MaxConns    int           // no more than this many connections in total
	Expect      string        // the exact reply of every connection
	ConnTimeout time.Duration // limit on one connection, dial to end of file
}

// Result is what one run measured. Latencies are in milliseconds and count
// successful connections only.
type Result struct {
	Addr        string  `json:"addr"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Conns       int     `json:"conns"`
	Failures    int     `json:"failures"`
	FirstError  string  `json:"first_error,omitempty"`
	ConnPerSec  float64 `json:"conn_per_s"`
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
}

// Run loads the server as cfg says and returns what it measured. It returns
// an error only for a configuration it cannot run; failed connections are
// counted in the result.
func Run(cfg Config) (Result, error) {
	if cfg.Concurrency < 1 || cfg.MaxConns < 1 || cfg.Duration <= 0 || cfg.ConnTimeout <= 0 {
		return Result{}, fmt.Errorf("loadgen: concurrency, connection count, duration and timeout must be positive")
	}
	network := "tcp"
	if strings.HasPrefix(cfg.Addr, "/") {
		network = "unix"
	}
	var (
		tickets  atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		failures int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var bad int
			var err1 error
			for time.Now().Before(deadline) && tickets.Add(1) <= int64(cfg.MaxConns) {
				d, err := once(network, cfg.Addr, []byte(cfg.Expect), cfg.ConnTimeout)
				if err != nil {
					bad++
					if err1 == nil {
						err1 = err
					}
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			failures += bad
			if firstErr == nil {
				firstErr = err1
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	r := Result{
		Addr:        cfg.Addr,
		Concurrency: cfg.Concurrency,
		Seconds:     elapsed.Seconds(),
		Conns:       len(lat) + failures,
		Failures:    failures,
		ConnPerSec:  float64(len(lat)) / elapsed.Seconds(),
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.P50 = ms(percentile(lat, 0.50))
	r.P90 = ms(percentile(lat, 0.90))
	r.P99 = ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		r.Max = ms(lat[len(lat)-1])
	}
	return r, nil
}

// once makes one connection: dial, read to end of file, compare.
func once(network, addr string, expect []byte, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(t0.Add(timeout)); err != nil {
		return 0, err
	}
	// Read to end of file, but never more than one byte beyond the
	// expected reply: exactly len(expect) bytes means end of file came.
	got, err := io.ReadAll(io.LimitReader(c, int64(len(expect))+1))
	if err != nil {
		return 0, fmt.Errorf("read from %s: %w", addr, err)
	}
	if !bytes.Equal(got, expect) {
		return 0, fmt.Errorf("reply from %s: got %q, want %q", addr, got, expect)
	}
	return time.Since(t0), nil
}

// percentile returns the nearest-rank percentile p (0..1) of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	i = max(i, 0)
	return ds[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
