package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds how much of a response body an HTTP job reads.
const maxResponse = 64 << 10

// httpClient serves every HTTP job. Keep-alives are off: jobs fire seconds
// apart at most, and no idle connection outlives a run.
var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 0, // bounded by the request context
		DisableKeepAlives:     true,
	},
}

// sendHTTP sends one request for an HTTP job, bounded by h.Timeout (default
// 10s) and ctx, with the job's headers plus X-Redcron-Job, X-Redcron-Slot
// (RFC 3339, UTC), X-Redcron-Fence, X-Redcron-Replica, X-Redcron-Attempt,
// and X-Redcron-Manual: 1 for a manual run.
// At most 64 KiB of the response body is read. The status must be in
// h.Expect (any 2xx when empty), else the outcome is a *StatusError.
func sendHTTP(ctx context.Context, h *HTTPSpec, r Run) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("jobs: http timeout %s: %w", timeout, context.DeadlineExceeded))
	defer cancel()
	method := h.Method
	if method == "" {
		method = DefaultHTTPMethod
	}
	var body io.Reader
	if h.Body != "" {
		body = strings.NewReader(h.Body)
	}
	req, err := http.NewRequestWithContext(rctx, method, h.URL, body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHTTPRequest, err)
	}
	for k, v := range h.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Redcron-Job", r.Job)
	req.Header.Set("X-Redcron-Slot", r.Slot.UTC().Format(time.RFC3339))
	req.Header.Set("X-Redcron-Fence", strconv.FormatInt(r.Fence, 10))
	req.Header.Set("X-Redcron-Replica", r.Replica)
	req.Header.Set("X-Redcron-Attempt", strconv.Itoa(r.Attempt))
	if r.Manual {
		req.Header.Set("X-Redcron-Manual", "1")
	}

	start := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrHTTPRequest, err)
		if cerr := ctxErr(ctx); cerr != nil { // the run was cancelled, not only the request
			return errors.Join(err, cerr)
		}
		if cause := context.Cause(rctx); cause != nil && !errors.Is(err, cause) {
			return errors.Join(err, cause)
		}
		return err
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	_, _ = r.Output.Write(data) // the record keeps the response's tail
	r.Logger.Info().Int("status", resp.StatusCode).Int("bytes", len(data)).Int64("took_ms", time.Since(start).Milliseconds()).Msg("http response")
	if !statusOK(resp.StatusCode, h.Expect) {
		snippet := string(data)
		if len(snippet) > 512 {
			snippet = snippet[:512]
		}
		return &StatusError{Code: resp.StatusCode, Body: snippet}
	}
	if rerr != nil {
		err = fmt.Errorf("%w: reading body: %w", ErrHTTPRequest, rerr)
		if cerr := ctxErr(ctx); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	return nil
}

func statusOK(code int, expect []int) bool {
	if len(expect) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(expect, code)
}
