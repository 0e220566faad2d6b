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
	// Sink names the sink.
	Sink string
	// Destination is the template rendered per event: {event_type}, {source}, {key},
	// {subject}, {header.NAME}.
	Destination string
	Retry       RetryPolicy
}

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
