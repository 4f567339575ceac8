// Package tracetest is a recording azcore tracing.Provider for tests: every span started through
// it, with its tracer (module), kind, attributes, status, parent and whether it ended.
package tracetest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
)

// Span is one recorded span.
type Span struct {
	Name   string
	Tracer string // the module name given to Provider.NewTracer
	Kind   tracing.SpanKind
	Parent *Span

	r      *Recorder
	attrs  map[string]any
	status tracing.SpanStatus
	desc   string
	ended  bool
}

// Attr returns the value of attribute key (nil when absent).
func (s *Span) Attr(key string) any {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.attrs[key]
}

// Attrs returns a copy of the attributes.
func (s *Span) Attrs() map[string]any {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	out := make(map[string]any, len(s.attrs))
	for k, v := range s.attrs {
		out[k] = v
	}
	return out
}

// Status returns the span's status and its description.
func (s *Span) Status() (tracing.SpanStatus, string) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.status, s.desc
}

// Ended reports whether End was called.
func (s *Span) Ended() bool {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.ended
}

// String describes the span for test failures.
func (s *Span) String() string {
	attrs := s.Attrs()
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (tracer %s, kind %d", s.Name, s.Tracer, s.Kind)
	for _, k := range keys {
		fmt.Fprintf(&sb, ", %s=%v", k, attrs[k])
	}
	st, d := s.Status()
	fmt.Fprintf(&sb, ", status %d %q, ended %v)", st, d, s.Ended())
	return sb.String()
}

// Recorder records the spans of its Provider. The zero value is ready to use.
type Recorder struct {
	mu    sync.Mutex
	spans []*Span
}

type spanKey struct{}

// Provider returns a tracing.Provider whose tracers record into r.
func (r *Recorder) Provider() tracing.Provider {
	return tracing.NewProvider(func(name, _ string) tracing.Tracer {
		return tracing.NewTracer(func(ctx context.Context, spanName string, o *tracing.SpanOptions) (context.Context, tracing.Span) {
			return r.start(ctx, name, spanName, o)
		}, &tracing.TracerOptions{SpanFromContext: func(ctx context.Context) tracing.Span {
			if s := FromContext(ctx); s != nil {
				return s.span()
			}
			return tracing.Span{}
		}})
	}, nil)
}

func (r *Recorder) start(ctx context.Context, tracer, name string, o *tracing.SpanOptions) (context.Context, tracing.Span) {
	s := &Span{Name: name, Tracer: tracer, r: r, attrs: map[string]any{}, Parent: FromContext(ctx)}
	if o != nil {
		s.Kind = o.Kind
		for _, a := range o.Attributes {
			s.attrs[a.Key] = a.Value
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, s)
	r.mu.Unlock()
	return context.WithValue(ctx, spanKey{}, s), s.span()
}

func (s *Span) span() tracing.Span {
	r := s.r
	return tracing.NewSpan(tracing.SpanImpl{
		End: func() {
			r.mu.Lock()
			s.ended = true
			r.mu.Unlock()
		},
		SetAttributes: func(attrs ...tracing.Attribute) {
			r.mu.Lock()
			for _, a := range attrs {
				s.attrs[a.Key] = a.Value
			}
			r.mu.Unlock()
		},
		SetStatus: func(c tracing.SpanStatus, d string) {
			r.mu.Lock()
			s.status, s.desc = c, d
			r.mu.Unlock()
		},
	})
}

// Start starts a span of the caller (a test's own span, kind internal) under ctx, as a user's
// code would with its tracer; end it with End.
func (r *Recorder) Start(ctx context.Context, name string) (context.Context, *Span) {
	ctx, _ = r.start(ctx, "caller", name, &tracing.SpanOptions{Kind: tracing.SpanKindInternal})
	return ctx, FromContext(ctx)
}

// End ends s.
func (s *Span) End() { s.span().End() }

// FromContext returns the recorded span in ctx, or nil.
func FromContext(ctx context.Context) *Span {
	s, _ := ctx.Value(spanKey{}).(*Span)
	return s
}

// Spans returns the spans recorded so far, in the order they started.
func (r *Recorder) Spans() []*Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Span(nil), r.spans...)
}

// Named returns the spans named name.
func (r *Recorder) Named(name string) []*Span {
	var out []*Span
	for _, s := range r.Spans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Children returns the spans whose parent is s.
func (r *Recorder) Children(s *Span) []*Span {
	var out []*Span
	for _, c := range r.Spans() {
		if c.Parent == s {
			out = append(out, c)
		}
	}
	return out
}

// Descendants returns the spans below s.
func (r *Recorder) Descendants(s *Span) []*Span {
	var out []*Span
	for _, c := range r.Spans() {
		for p := c.Parent; p != nil; p = p.Parent {
			if p == s {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// Reset forgets the spans recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.spans = nil
	r.mu.Unlock()
}

// Dump describes every span, one a line, for test failures.
func (r *Recorder) Dump() string {
	var sb strings.Builder
	for _, s := range r.Spans() {
		sb.WriteString(s.String())
		if s.Parent != nil {
			sb.WriteString(" <- " + s.Parent.Name)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}
