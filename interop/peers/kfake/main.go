// Command kfakepeer starts franz-go's kfake (an in-process fake Kafka broker written in Go) on
// a free loopback port, as a second foreign broker for our client (interop/tests/kfake.rs).
//
// It prints "LISTEN host:port[,host:port]" once the cluster listens, then runs until its
// standard input closes (so it never outlives the test that started it) or it is signalled.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println("LISTEN " + strings.Join(c.ListenAddrs(), ","))

	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		done <- struct{}{}
	}()
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		done <- struct{}{}
	}()
	<-done
}
