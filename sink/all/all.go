// Package all registers every sink type with the config loader. Import it for its side
// effect: `import _ "github.com/conveyorhq/conveyor/sink/all"`.
package all

import (
	_ "github.com/conveyorhq/conveyor/sink/amqp"        // type: rabbitmq
	_ "github.com/conveyorhq/conveyor/sink/kafka"       // type: kafka
	_ "github.com/conveyorhq/conveyor/sink/mqtt"        // type: mqtt
	_ "github.com/conveyorhq/conveyor/sink/natsjs"      // type: nats
	_ "github.com/conveyorhq/conveyor/sink/redisstream" // type: redis
	_ "github.com/conveyorhq/conveyor/sink/webhook"     // type: webhook
)
