package amqp

import (
	"errors"
	"fmt"
	"strings"
)

// target is where one message goes.
type target struct {
	exchange   string
	routingKey string
}

// parseDestination splits a rendered route destination into exchange and routing key:
//
//	"orders/order.paid"  exchange "orders", routing key "order.paid"
//	"/billing"           the default exchange "", routing key "billing" (a queue name)
//	"order.paid"         the configured Exchange, routing key "order.paid"
//
// The first "/" separates them, so a routing key may contain "/" but an exchange named in
// a destination may not.
func parseDestination(dest, defaultExchange string) (target, error) {
	t := target{exchange: defaultExchange, routingKey: dest}
	if ex, key, ok := strings.Cut(dest, "/"); ok {
		t = target{exchange: ex, routingKey: key}
	}
	if err := checkName(t.exchange); err != nil {
		return target{}, fmt.Errorf("exchange: %w", err)
	}
	if len(t.routingKey) > 255 {
		return target{}, errors.New("routing key is longer than 255 bytes")
	}
	if t.exchange == "" && t.routingKey == "" {
		return target{}, errors.New("empty destination: the default exchange needs a routing key (a queue name)")
	}
	return t, nil
}

func (t target) String() string {
	ex := t.exchange
	if ex == "" {
		ex = "(default)"
	}
	return fmt.Sprintf("exchange %s routing key %q", ex, t.routingKey)
}
