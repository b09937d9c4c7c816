// Real Go panics after ordinary log lines, for logferry's multiline "go" preset.
// Each mode panics (or dies) once: go build -trimpath -o panics panics.go && ./panics MODE 2>>go.log
package main

import (
	"log"
	"os"
	"runtime/debug"
	"sync"
)

type config struct{ workers int }

type queue struct {
	items []string
	limit int
}

func (q *queue) push(item string) {
	if len(q.items) >= q.limit {
		panic("queue full: " + item)
	}
	q.items = append(q.items, item)
}

func fill(q *queue, n int) {
	for i := 0; i < n; i++ {
		q.push("job")
	}
}

func workers(c *config) int { return c.workers } // c == nil: a nil-pointer dereference

func cleanup() {
	if r := recover(); r != nil {
		log.Printf("cleaning up after %v", r)
		panic("cleanup failed")
	}
}

func withCleanup() {
	defer cleanup()
	var m map[string]int
	m["jobs"]++ // assignment to entry in nil map
}

func depth(n int) int { return depth(n+1) + 1 } // never returns: a stack overflow

func waitFor(ch chan int, wg *sync.WaitGroup) {
	wg.Done()
	<-ch
}

func main() {
	log.SetOutput(os.Stderr)
	log.Printf("starting mode=%s", os.Args[1])
	switch os.Args[1] {
	case "plain":
		log.Printf("filling the queue")
		fill(&queue{limit: 2}, 3)
	case "nil":
		log.Printf("workers: %d", workers(nil))
	case "recovered":
		withCleanup()
	case "goroutines":
		debug.SetTraceback("all") // every goroutine in the dump, as GOTRACEBACK=all
		ch := make(chan int)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go waitFor(ch, &wg)
		}
		wg.Wait()
		done := make(chan bool)
		go func() {
			log.Printf("worker: checking queue")
			fill(&queue{limit: 0}, 1)
			done <- true
		}()
		<-done
	case "overflow":
		debug.SetMaxStack(1 << 20) // a 1 MB stack overflows soon
		log.Printf("depth: %d", depth(0))
	case "deadlock":
		ch := make(chan int)
		log.Printf("waiting for a result")
		<-ch
	}
}
