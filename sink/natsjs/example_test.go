package natsjs_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/sink"
	"github.com/conveyorhq/conveyor/sink/natsjs"
)

// Publish an event to the embedded JetStream server and read it back as `conveyor tail`
// does.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "conveyor-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	srv, err := natsjs.StartEmbedded(ctx, natsjs.EmbeddedConfig{Port: -1, StoreDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()

	s, err := natsjs.New(ctx, natsjs.Config{URL: srv.ClientURL(), CreateStream: true}, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)

	e := &conveyor.Event{
		ID:        uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
		Type:      "order.paid",
		Source:    "/shop",
		Data:      []byte(`{"order_id":42}`),
		CreatedAt: time.Date(2024, 5, 1, 12, 34, 56, 0, time.UTC),
	}
	errs := s.Publish(ctx, []*sink.Message{{Event: e, Destination: "events.order.paid"}})
	fmt.Println("publish:", errs[0])

	err = natsjs.Tail(ctx, natsjs.TailParams{Config: natsjs.Config{URL: srv.ClientURL()}, Count: 1},
		func(r natsjs.Received) error {
			fmt.Println(r.StreamSeq, r.Subject, r.Attributes.Type, r.Attributes.ID, r.Attributes.Time.Format(time.RFC3339))
			fmt.Println(string(r.Data))
			return nil
		})
	fmt.Println("tail:", err)
	// Output:
	// publish: <nil>
	// 1 events.order.paid order.paid 01890a5d-ac96-774b-bcce-b302099a8057 2024-05-01T12:34:56Z
	// {"order_id":42}
	// tail: <nil>
}
