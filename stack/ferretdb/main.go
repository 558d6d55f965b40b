// Command threadline-ferretdb runs FerretDB 1.24 with its SQLite backend as the
// MongoDB-protocol server of the local stack.
//
// It embeds FerretDB through its public package instead of `go install`ing the
// upstream command, whose version file is generated at build time and missing
// from the module (the installed binary panics at start).
//
// FerretDB 1.24 executes an update as read, modify, write without a lock, so two
// concurrent updates of one document lose one of them ($inc, $push, $pull...),
// which breaks the per-document atomicity every MongoDB client relies on. This
// program therefore serves clients through a small wire-protocol proxy that runs
// one writing command at a time: FerretDB listens on a private loopback port, the
// proxy on the public one, and a lock spans each request and its reply — shared
// by read-only commands (find, count, aggregate...), which SQLite's WAL serves
// from consistent snapshots, exclusive for everything else. A slow query then no
// longer holds up every write behind it.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const (
	headerSize     = 16
	maxMessageSize = 48 << 20
	opMsg          = 2013
	moreToComeFlag = 1 << 1
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", "./ferretdb-data", "directory that holds the SQLite databases")
	flag.Parse()

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		log.Fatalf("create data dir: %v", err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	db, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dataDir + "/",
	})
	if err != nil {
		log.Fatalf("start ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()

	upstream, err := upstreamAddr(db.MongoDBURI())
	if err != nil {
		log.Fatalf("ferretdb address: %v", err)
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen on %s: %v", *listen, err)
	}
	go func() {
		<-ctx.Done()
		listener.Close()
	}()
	log.Printf("ferretdb listening on %s (sqlite in %s, writes serialised)", *listen, *dataDir)

	var serial sync.RWMutex
	for {
		client, err := listener.Accept()
		if err != nil {
			break
		}
		go proxy(client, upstream, &serial)
	}
	if err := <-done; err != nil {
		log.Fatalf("ferretdb stopped: %v", err)
	}
}

func upstreamAddr(uri string) (string, error) {
	parsed, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	if parsed.Host == "" {
		return "", fmt.Errorf("no host in %q", uri)
	}
	return parsed.Host, nil
}

// proxy relays one client connection, holding serial from each request until its reply.
func proxy(client net.Conn, upstream string, serial *sync.RWMutex) {
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Printf("connect to ferretdb: %v", err)
		return
	}
	defer server.Close()

	fromClient := bufio.NewReader(client)
	fromServer := bufio.NewReader(server)
	for {
		request, err := readMessage(fromClient)
		if err != nil {
			return
		}
		reply, err := roundTrip(server, fromServer, request, serial)
		if err != nil {
			return
		}
		if reply != nil {
			if _, err := client.Write(reply); err != nil {
				return
			}
		}
	}
}

func roundTrip(server net.Conn, fromServer *bufio.Reader, request []byte, serial *sync.RWMutex) ([]byte, error) {
	name := commandName(request)
	switch {
	case lockFreeCommands[name]:
	case readOnlyCommands[name]:
		serial.RLock()
		defer serial.RUnlock()
	default:
		serial.Lock()
		defer serial.Unlock()
	}
	if _, err := server.Write(request); err != nil {
		return nil, err
	}
	if expectsNoReply(request) {
		return nil, nil
	}
	return readMessage(fromServer)
}

func readMessage(r io.Reader) ([]byte, error) {
	header := make([]byte, headerSize)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	size := int(binary.LittleEndian.Uint32(header[0:4]))
	if size < headerSize || size > maxMessageSize {
		return nil, errors.New("invalid message length")
	}
	message := make([]byte, size)
	copy(message, header)
	if _, err := io.ReadFull(r, message[headerSize:]); err != nil {
		return nil, err
	}
	return message, nil
}

// lockFreeCommands touch no data: drivers' handshakes and heartbeats must answer even
// while a long write holds the lock, or the driver declares the server down and
// cancels everything in flight.
var lockFreeCommands = map[string]bool{
	"hello": true, "isMaster": true, "ismaster": true, "ping": true, "buildInfo": true,
	"buildinfo": true, "getParameter": true, "endSessions": true,
}

// readOnlyCommands never change data, so they may run beside each other
// (FerretDB 1.24 rejects the writing aggregation stages $out and $merge).
var readOnlyCommands = map[string]bool{
	"find": true, "getMore": true, "count": true, "distinct": true, "aggregate": true,
	"listCollections": true, "listDatabases": true, "listIndexes": true, "explain": true,
	"dbStats": true, "collStats": true, "serverStatus": true, "killCursors": true,
}

// commandName returns the first key of an OP_MSG body section (the command), or "".
// Anything else (legacy opcodes, other section layouts) counts as a write.
func commandName(message []byte) string {
	const bodyStart = headerSize + 4 // header, flag bits
	if binary.LittleEndian.Uint32(message[12:16]) != opMsg || len(message) < bodyStart+6 {
		return ""
	}
	if message[bodyStart] != 0 { // section kind 0: the command document comes first
		return ""
	}
	// kind byte, int32 document length, element type byte, then the name as a C string
	name := message[bodyStart+6:]
	for i, b := range name {
		if b == 0 {
			return string(name[:i])
		}
	}
	return ""
}

// expectsNoReply reports an OP_MSG sent with moreToCome (an unacknowledged write).
func expectsNoReply(message []byte) bool {
	if binary.LittleEndian.Uint32(message[12:16]) != opMsg || len(message) < headerSize+4 {
		return false
	}
	return binary.LittleEndian.Uint32(message[16:20])&moreToComeFlag != 0
}
