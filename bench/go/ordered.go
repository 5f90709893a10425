package main

import (
	"context"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxBuffered bounds the records fetched but not yet finished (the fetch loop waits beyond it).
const maxBuffered = 10000

// commitEvery is how often finished offsets are committed (and once more on close).
const commitEvery = 500 * time.Millisecond

func registerInput() error {
	spec := service.NewConfigSpec().
		Summary("franz-go consumer: per-key order, commits the contiguous prefix of finished offsets.").
		Field(service.NewStringListField("seed_brokers")).
		Field(service.NewStringField("topic")).
		Field(service.NewStringField("consumer_group"))
	return service.RegisterInput("franz_ordered", spec,
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Input, error) {
			brokers, err := conf.FieldStringList("seed_brokers")
			if err != nil {
				return nil, err
			}
			topic, err := conf.FieldString("topic")
			if err != nil {
				return nil, err
			}
			group, err := conf.FieldString("consumer_group")
			if err != nil {
				return nil, err
			}
			return newOrdered(brokers, topic, group), nil
		})
}

// ordered hands out a record only when no earlier record of its key is in flight, so calls for
// one person keep their order while different people run concurrently (Benthos max_in_flight).
type ordered struct {
	brokers []string
	topic   string
	group   string

	client *kgo.Client
	ready  chan *kgo.Record // records whose key has nothing in flight
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	room     *sync.Cond
	waiting  map[string][]*kgo.Record // per key, behind the one in flight
	busy     map[string]bool
	buffered int
	done     map[int32]map[int64]bool // finished offsets past the commit point
	next     map[int32]int64          // per partition: the next offset to commit
	dirty    bool
}

func newOrdered(brokers []string, topic, group string) *ordered {
	o := &ordered{
		brokers: brokers, topic: topic, group: group,
		ready:   make(chan *kgo.Record, maxBuffered+1),
		waiting: map[string][]*kgo.Record{},
		busy:    map[string]bool{},
		done:    map[int32]map[int64]bool{},
		next:    map[int32]int64{},
	}
	o.room = sync.NewCond(&o.mu)
	return o
}

func (o *ordered) Connect(ctx context.Context) error {
	client, err := kgo.NewClient(
		kgo.SeedBrokers(o.brokers...),
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(o.topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return err
	}
	o.client = client
	loop, stop := context.WithCancel(context.Background())
	o.stop = stop
	o.wg.Add(2)
	go o.fetch(loop)
	go o.commitLoop(loop)
	return nil
}

func (o *ordered) fetch(ctx context.Context) {
	defer o.wg.Done()
	for ctx.Err() == nil {
		o.mu.Lock()
		for o.buffered >= maxBuffered && ctx.Err() == nil {
			o.room.Wait()
		}
		o.mu.Unlock()
		fetches := o.client.PollRecords(ctx, 1000)
		o.mu.Lock()
		fetches.EachRecord(o.add)
		o.mu.Unlock()
	}
}

func (o *ordered) add(r *kgo.Record) { // o.mu held
	if _, seen := o.next[r.Partition]; !seen {
		o.next[r.Partition] = r.Offset
		o.done[r.Partition] = map[int64]bool{}
	}
	o.buffered++
	key := string(r.Key)
	if o.busy[key] {
		o.waiting[key] = append(o.waiting[key], r)
		return
	}
	o.busy[key] = true
	o.ready <- r
}

func (o *ordered) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case r, ok := <-o.ready:
		if !ok {
			return nil, nil, service.ErrEndOfInput
		}
		return service.NewMessage(r.Value), func(_ context.Context, err error) error {
			o.finish(r, err)
			return nil
		}, nil
	}
}

func (o *ordered) finish(r *kgo.Record, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil { // the output gave up: the same record goes again, still first for its key
		o.ready <- r
		return
	}
	key := string(r.Key)
	if queue := o.waiting[key]; len(queue) > 0 {
		o.waiting[key] = queue[1:]
		o.ready <- queue[0]
	} else {
		delete(o.waiting, key)
		delete(o.busy, key)
	}
	o.buffered--
	o.room.Signal()
	done := o.done[r.Partition]
	done[r.Offset] = true
	for next := o.next[r.Partition]; done[next]; next++ {
		delete(done, next)
		o.next[r.Partition] = next + 1
		o.dirty = true
	}
}

func (o *ordered) commitLoop(ctx context.Context) {
	defer o.wg.Done()
	tick := time.NewTicker(commitEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			o.commit(ctx)
		}
	}
}

func (o *ordered) commit(ctx context.Context) {
	o.mu.Lock()
	if !o.dirty {
		o.mu.Unlock()
		return
	}
	offsets := map[int32]kgo.EpochOffset{}
	for partition, next := range o.next {
		offsets[partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
	}
	o.dirty = false
	o.mu.Unlock()
	o.client.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{o.topic: offsets}, nil)
}

func (o *ordered) Close(ctx context.Context) error {
	if o.client == nil {
		return nil
	}
	o.stop()
	o.mu.Lock()
	o.room.Broadcast()
	o.mu.Unlock()
	o.wg.Wait()
	o.commit(ctx)
	o.client.Close()
	return nil
}
