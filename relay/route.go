package relay

import (
	"path"
	"regexp"
	"strings"

	"github.com/conveyorhq/conveyor"
)

// Route sends matching events to a sink.
type Route struct {
	Name string
	// EventType and Source are globs (path.Match syntax); an empty glob matches all.
	EventType, Source string
	// Headers are globs on event headers; all must match.
	Headers map[string]string
	// Sink names the sink.
	Sink string
	// Destination is the template rendered per event: {event_type}, {source}, {key},
	// {subject}, {header.NAME}.
	Destination string
	Retry       RetryPolicy
	// OnDead is "skip" (default: a dead event lets later events of its key go on) or
	// "block" (it holds the key until an operator retries or discards it).
	OnDead string
	// DeadLetter, when set, also publishes dead events there, with the reason in headers.
	DeadLetter *DeadLetter
}

// DeadLetter is where a route's dead events are also published.
type DeadLetter struct {
	Sink        string
	Destination string // template, like Route.Destination
}

// Dead-letter message headers.
const (
	HeaderDeadReason   = "conveyor-dead-reason"
	HeaderDeadAttempts = "conveyor-dead-attempts"
	HeaderDeadRoute    = "conveyor-dead-route"
)

func (r *Route) matches(ev *conveyor.Event) bool {
	if r.EventType != "" {
		if ok, _ := path.Match(r.EventType, ev.Type); !ok {
			return false
		}
	}
	if r.Source != "" {
		if ok, _ := path.Match(r.Source, ev.Source); !ok {
			return false
		}
	}
	for h, glob := range r.Headers {
		v, present := ev.Headers[h]
		if !present {
			return false
		}
		if ok, _ := path.Match(glob, v); !ok {
			return false
		}
	}
	return true
}

var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// Render fills a destination template from an event.
func Render(tmpl string, ev *conveyor.Event) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	return placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		switch name := m[1 : len(m)-1]; name {
		case "event_type":
			return ev.Type
		case "source":
			return ev.Source
		case "key":
			return ev.Key
		case "subject":
			return ev.Subject
		default:
			if h, ok := strings.CutPrefix(name, "header."); ok {
				return ev.Headers[h]
			}
			return m
		}
	})
}
