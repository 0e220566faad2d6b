package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/conveyorhq/conveyor/sink"
)

// topicExists asks the cluster's metadata whether topic exists. Errors are classified.
func (s *Sink) topicExists(ctx context.Context, topic string) (bool, error) {
	details, err := s.adm.ListTopics(ctx, topic)
	if err != nil {
		return false, s.adminError("look up", topic, err)
	}
	d, ok := details[topic]
	switch {
	case !ok, errors.Is(d.Err, kerr.UnknownTopicOrPartition), errors.Is(d.Err, kerr.UnknownTopicID):
		return false, nil
	case d.Err != nil:
		return false, s.adminError("look up", topic, d.Err)
	}
	return true, nil
}

// ensureTopic creates topic with the create_topics settings unless it exists, then
// waits (briefly) until its partitions have leaders. Known topics cost nothing.
func (s *Sink) ensureTopic(ctx context.Context, topic string) error {
	if _, ok := s.topics.Load(topic); ok {
		return nil
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if _, ok := s.topics.Load(topic); ok {
		return nil
	}
	exists, err := s.topicExists(ctx, topic)
	if err != nil {
		return err
	}
	if !exists {
		ct := s.cfg.CreateTopics
		configs := make(map[string]*string, len(ct.Configs))
		for k, v := range ct.Configs {
			configs[k] = &v
		}
		_, err := s.adm.CreateTopic(ctx, int32(ct.Partitions), int16(ct.ReplicationFactor), configs, topic)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
		case err != nil:
			return s.adminError("create", topic, err)
		default:
			s.log.Info("kafka: created topic", "topic", topic, "partitions", ct.Partitions, "replication_factor", ct.ReplicationFactor)
		}
		s.waitLeaders(ctx, topic)
	}
	s.topics.Store(topic, struct{}{})
	return nil
}

// waitLeaders polls metadata until every partition of topic has a leader, so the first
// produce does not race the controller. Best effort: the producer retries anyway.
func (s *Sink) waitLeaders(ctx context.Context, topic string) {
	ctx, cancel := context.WithTimeout(ctx, metadataWait)
	defer cancel()
	for {
		details, err := s.adm.ListTopics(ctx, topic)
		if err == nil {
			if d, ok := details[topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
				ready := true
				for _, p := range d.Partitions {
					if p.Leader < 0 || p.Err != nil {
						ready = false
					}
				}
				if ready {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// adminError classifies a failed metadata or create-topic request about topic.
func (s *Sink) adminError(op, topic string, err error) error {
	err = sink.RedactError(err, s.secrets)
	switch {
	case errors.Is(err, kerr.InvalidTopicException):
		return sink.Permanent(fmt.Errorf("kafka: the broker refuses topic name %q; fix the route's destination: %w", topic, err))
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.PolicyViolation):
		return sink.Permanent(fmt.Errorf("kafka: cannot %s topic %q: not allowed; create the topic yourself or grant the client CREATE and DESCRIBE on it: %w",
			op, topic, err))
	case errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidPartitions),
		errors.Is(err, kerr.InvalidConfig), errors.Is(err, kerr.InvalidReplicaAssignment):
		// The create_topics settings are wrong for every topic: an outage of the sink
		// until the config is fixed, not a reason to dead-letter events.
		return sink.Transient(fmt.Errorf("kafka: cannot create topic %q: the cluster refuses the create_topics settings (partitions %d, replication_factor %d); fix them: %w",
			topic, s.cfg.CreateTopics.Partitions, s.cfg.CreateTopics.ReplicationFactor, err))
	case isAuthError(err):
		return sink.Transient(fmt.Errorf("kafka: %s refused the client's credentials or permissions; check sasl and the cluster ACLs: %w", s.brokers, err))
	case isTransient(err):
		return sink.Transient(fmt.Errorf("kafka: cannot %s topic %q on %s: %w", op, topic, s.brokers, err))
	}
	return fmt.Errorf("kafka: cannot %s topic %q on %s: %w", op, topic, s.brokers, err)
}

// unknownTopic explains a record failed because its topic is unknown. The producer
// gives up only after several metadata refreshes, so ask the cluster once more: if the
// topic does not exist, the route points nowhere, a config error no retry fixes.
func (s *Sink) unknownTopic(ctx context.Context, topic string, cause error, verdicts map[string]error) error {
	if v, ok := verdicts[topic]; ok {
		return v
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	var v error
	exists, err := s.topicExists(lctx, topic)
	switch {
	case err != nil:
		v = sink.Transient(fmt.Errorf("kafka: topic %q is unknown to the producer, and looking it up failed (%v): %w", topic, err, cause))
	case !exists:
		v = sink.Permanent(fmt.Errorf("kafka: topic %q does not exist on %s; create it, set create_topics (or allow_auto_topic_creation), or fix the route's destination: %w",
			topic, s.brokers, cause))
	default:
		v = sink.Transient(fmt.Errorf("kafka: topic %q exists but its partitions are not available yet: %w", topic, cause))
	}
	verdicts[topic] = v
	return v
}

// maxMessageBytes returns topic's max.message.bytes, cached.
func (s *Sink) maxMessageBytes(ctx context.Context, topic string) (int, error) {
	if v, ok := s.limits.Load(topic); ok {
		return v.(int), nil
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	rcs, err := s.adm.DescribeTopicConfigs(lctx, topic)
	if err != nil {
		return 0, sink.RedactError(err, s.secrets)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return 0, err
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			n, err := strconv.Atoi(*c.Value)
			if err != nil {
				return 0, fmt.Errorf("max.message.bytes %q: %w", *c.Value, err)
			}
			s.limits.Store(topic, n)
			return n, nil
		}
	}
	return 0, errors.New("the topic has no max.message.bytes config")
}
