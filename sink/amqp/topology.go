package amqp

import (
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// declare declares the exchanges, then the queues, then the bindings. A failure closes
// the channel, so the caller discards the session.
func declare(ch *amqp091.Channel, t Topology) error {
	for _, x := range t.Exchanges {
		if err := ch.ExchangeDeclare(x.Name, x.Type, boolOr(x.Durable, true), x.AutoDelete, false, false, table(x.Arguments)); err != nil {
			return fmt.Errorf("amqp: declare exchange %q (type %s): %w; an exchange that exists with other settings must be deleted or declared as it is", x.Name, x.Type, err)
		}
	}
	for _, q := range t.Queues {
		if _, err := ch.QueueDeclare(q.Name, boolOr(q.Durable, true), q.AutoDelete, false, false, table(q.Arguments)); err != nil {
			return fmt.Errorf("amqp: declare queue %q: %w; a queue that exists with other settings must be deleted or declared as it is", q.Name, err)
		}
	}
	for _, b := range t.Bindings {
		if err := ch.QueueBind(b.Queue, b.RoutingKey, b.Exchange, false, table(b.Arguments)); err != nil {
			return fmt.Errorf("amqp: bind queue %q to exchange %q with key %q: %w", b.Queue, b.Exchange, b.RoutingKey, err)
		}
	}
	return nil
}

// table converts YAML-decoded arguments (nested maps and lists) to an AMQP field table.
func table(m map[string]any) amqp091.Table {
	if m == nil {
		return nil
	}
	t := make(amqp091.Table, len(m))
	for k, v := range m {
		t[k] = fieldValue(v)
	}
	return t
}

func fieldValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return table(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = fieldValue(x)
		}
		return out
	case int:
		return int64(v)
	case uint64:
		return int64(v) //nolint:gosec // YAML integers in x-arguments are small
	}
	return v
}
