// Command baseline is the Go side of bench/side_by_side.py: a Benthos core stream whose input is
// a small franz-go consumer that keeps per-key order and commits only finished offsets.
//
//	baseline CONFIG.yaml
//
// CONFIG is a Benthos stream config (input franz_ordered, a Bloblang mapping, http_client out).
// SIGTERM or SIGINT stops the stream; the input commits what is done before it closes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: baseline CONFIG.yaml")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	if err := registerInput(); err != nil {
		return err
	}
	conf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	builder := service.NewStreamBuilder()
	if err := builder.SetYAML(string(conf)); err != nil {
		return err
	}
	stream, err := builder.Build()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		done, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = stream.Stop(done)
	}()
	return stream.Run(context.Background())
}
