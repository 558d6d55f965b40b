// Command threadline-ferretdb runs FerretDB 1.24 as the MongoDB-protocol server of
// the local stack: on PostgreSQL (the default), which it starts and stops itself
// as a child process so that one process group is the whole server, or on SQLite.
//
// It embeds FerretDB through its public package instead of `go install`ing the
// upstream command, whose version file is generated at build time and missing
// from the module (the installed binary panics at start).
//
// FerretDB 1.24 executes update, findAndModify and delete as read, modify, write
// without a lock (handler/msg_update.go, common/update.go, msg_delete.go), so two
// concurrent updates of one document lose one of them ($inc, $push, $pull...),
// which breaks the per-document atomicity every MongoDB client relies on. This
// program therefore serves clients through a small wire-protocol proxy: FerretDB
// listens on a private loopback port, the proxy on the public one, and each
// read-modify-write request holds, until its reply, locks on what it can touch
// (locks.go): the documents its filters pin by `_id` (equality or `$in`), else its
// whole collection; schema changes and anything unreadable hold the whole server.
// Like MongoDB's document-level locking, updates of different documents run side by
// side and two updates of one document one after the other. Reads, inserts and
// handshakes take no lock at all: they change no existing document, so they cannot
// lose an update, and they never wait behind a slow query or a slow update.
//
// On PostgreSQL it also gives FerretDB's indexes the GIN twins its queries can use
// (indexes.go): without them every query scanned its whole collection.
// And it runs the queries of batch clients (the user batchRole) at a lower CPU priority
// than the requests' (priority.go).
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
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const (
	// maxConcurrentWriters: read-modify-write requests at FerretDB at once (locks.go).
	maxConcurrentWriters = 16
	// heapLimit: FerretDB 1.24 allocates heavily per document (JSON decoding, a tracked
	// iterator each; ~700 MB/s during a bulk job) while its live heap stays near 10 MB,
	// so with a GOGC percentage its collector ran every few tens of milliseconds: at
	// Go's default 100 it took a fifth of its CPU, and at 400 (the setting before this
	// one) it still ran 1,275 times in a 5-round bulk benchmark. With the percentage off
	// and this limit it runs when the heap reaches 1 GiB: 30 times in the same benchmark
	// (MongoDB itself gives its cache half the machine's memory). There the job went
	// from 539 to 641 accounts/s and the post's p50/p99 during it from 30.2/78.0 to
	// 26.9/69.5 ms. GOGC or GOMEMLIMIT in the environment override both.
	heapLimit      = 1 << 30
	headerSize     = 16
	maxMessageSize = 48 << 20
	opMsg          = 2013
	opQuery        = 2004
	moreToComeFlag = 1 << 1
)

func main() {
	if err := run(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "postgresql", `FerretDB backend: "postgresql" or "sqlite"`)
	dataDir := flag.String("data", "./ferretdb-data", "directory of the SQLite databases or the PostgreSQL cluster")
	pgBin := flag.String("postgres-bin", "/usr/lib/postgresql/15/bin", "PostgreSQL's binaries")
	pgPort := flag.Int("postgres-port", 54320, "PostgreSQL's port on 127.0.0.1")
	batchNiceness := flag.Int("batch-niceness", 10, "niceness of the PostgreSQL backends serving "+batchRole)
	pgUser := flag.String("postgres-user", "", "run PostgreSQL as this user (when started as root)")
	flag.Parse()
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(heapLimit)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Handler:  *handler,
	}
	switch *handler {
	case "sqlite":
		if err := os.MkdirAll(*dataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		config.SQLiteURL = "file:" + *dataDir + "/"
	case "postgresql":
		postgres, err := startPostgres(ctx, *pgBin, *dataDir, *pgPort, *pgUser)
		if err != nil {
			return fmt.Errorf("start postgresql: %w", err)
		}
		defer postgres.stop()
		if err := runSQL(ctx, *pgBin, *pgPort, ginTwinsSQL+batchRoleSQL); err != nil {
			return fmt.Errorf("set up postgresql: %w", err)
		}
		relayListener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen for ferretdb's postgresql connections: %w", err)
		}
		defer relayListener.Close()
		relay := priorityRelay{postgres: fmt.Sprintf("127.0.0.1:%d", *pgPort), role: batchRole, niceness: *batchNiceness}
		go relay.serve(relayListener)
		config.PostgreSQLURL = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", relayListener.Addr())
	default:
		return fmt.Errorf("unknown handler %q", *handler)
	}
	return serve(ctx, config, *listen)
}

// serve runs FerretDB on a private port and the locking proxy on listen until ctx ends.
func serve(ctx context.Context, config *ferretdb.Config, listen string) error {
	db, err := ferretdb.New(config)
	if err != nil {
		return fmt.Errorf("start ferretdb: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()

	upstream, err := upstreamAddr(db.MongoDBURI())
	if err != nil {
		return fmt.Errorf("ferretdb address: %w", err)
	}
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	go func() {
		<-ctx.Done()
		listener.Close()
	}()
	log.Printf("ferretdb listening on %s (%s, read-modify-write commands locked per document)", listen, config.Handler)

	locks := newLockTable(maxConcurrentWriters)
	for {
		client, err := listener.Accept()
		if err != nil {
			break
		}
		go proxy(client, upstream, locks)
	}
	return <-done
}

// postgresProcess is the PostgreSQL server this program started.
type postgresProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startPostgres runs `postgres` on an initialised cluster in dataDir (the stack's set-up
// runs initdb) and waits until it accepts connections. The server dies with this
// program (parent-death signal), so a killed wrapper never leaves it holding the port.
// fsync is off: a killed process loses nothing, only a machine crash could.
//
// Two settings keep FerretDB's queries on their indexes while collections grow from empty,
// as they do in tests and benchmarks (each found in the bulk benchmark, where the post's
// lookup of its thread took 30–110 ms instead of 0.6 ms while the job wrote 10,000 threads):
//   - plan_cache_mode=force_custom_plan: FerretDB prepares every query, and its filters name
//     the field as a parameter (`_jsonb -> $1 @> $2`), which no index expression matches, so
//     a prepared statement's generic plan is always a sequential scan. PostgreSQL switches to
//     it after five executions when it costs no more than the custom plans — as it does on
//     a collection of a few documents — and keeps it however large the collection grows.
//   - autovacuum_naptime=1s: statistics follow a growing collection within seconds, not a
//     minute. With the statistics of a one-document collection, PostgreSQL ANDs the bitmap
//     of every filter field, so a lookup by `{_id, firm}` also read the firm's whole
//     posting list in the `firm` index.
//   - autovacuum_analyze_scale_factor=0.5 (default 0.1): with a one-second nap, a
//     collection growing from empty was analysed at every tenth of growth, ~55 times while
//     a bulk job wrote 10,000 threads; ANALYZE then took a third of PostgreSQL's busy time
//     and PostgreSQL half a core (pg_stat_activity samples). At every half it is analysed
//     ~13 times, and its statistics are never off by more than half its size.
//   - default_statistics_target=10 (default 100): ANALYZE samples 3,000 rows instead of
//     30,000 and keeps 10 common values and histogram buckets per index expression. A
//     FerretDB table has one jsonb column, and what the planner uses are the statistics of
//     the index expressions; analyzing a 10,000-document threads collection took 105 ms
//     instead of 350 ms, and autovacuum's ANALYZE CPU per bulk benchmark round fell from
//     3.5–4.0 s to 1.7–2.3 s (log_autovacuum_min_duration=0), CPU that ran beside the
//     job's and the posts' queries; the lookups keep their plans
//     (tests/integration/test_local_stack_postgres.py).
func startPostgres(ctx context.Context, bin, dataDir string, port int, runAs string) (*postgresProcess, error) {
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", dataDir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
		"-c", "plan_cache_mode=force_custom_plan", "-c", "autovacuum_naptime=1s",
		"-c", "autovacuum_analyze_scale_factor=0.5", "-c", "default_statistics_target=10",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if runAs != "" && os.Geteuid() == 0 {
		account, err := user.Lookup(runAs)
		if err != nil {
			return nil, err
		}
		uid, _ := strconv.Atoi(account.Uid)
		gid, _ := strconv.Atoi(account.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = append(os.Environ(), "HOME="+account.HomeDir)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	process := &postgresProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(process.exited)
	}()
	for deadline := time.Now().Add(120 * time.Second); ; {
		ready := exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-U", "postgres", "-h", "127.0.0.1", "-p", strconv.Itoa(port))
		if ready.Run() == nil {
			return process, nil
		}
		select {
		case <-process.exited:
			return nil, fmt.Errorf("postgres exited during start-up: %v", cmd.ProcessState)
		case <-ctx.Done():
			process.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			process.stop()
			return nil, errors.New("postgres did not accept connections within 120s")
		}
	}
}

// runSQL runs a script with psql (from PostgreSQL's own binaries), stopping at an error.
func runSQL(ctx context.Context, bin string, port int, sql string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "psql"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres",
		"-v", "ON_ERROR_STOP=1", "-q", "-X", "-o", os.DevNull, "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, output)
	}
	return nil
}

// stop asks for a fast shutdown (SIGINT), then kills after a few seconds.
func (p *postgresProcess) stop() {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(8 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
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

// proxy relays one client connection, holding each request's locks until its reply.
func proxy(client net.Conn, upstream string, locks *lockTable) {
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
		reply, err := roundTrip(server, fromServer, request, locks)
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

func roundTrip(server net.Conn, fromServer *bufio.Reader, request []byte, locks *lockTable) ([]byte, error) {
	if parsed := readRequest(request); !parsed.lockFree {
		defer locks.acquire(parsed.scope)()
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

// lockFreeCommands never change an existing document, so they cannot lose an
// update and run without the lock: handshakes and heartbeats (a driver that gets
// no answer declares the server down and cancels everything in flight), reads
// (FerretDB 1.24 rejects the writing aggregation stages $out and $merge) and
// inserts (a new document; the unique indexes of the backend reject duplicates).
// Everything else (update, findAndModify, delete, and the rare schema commands)
// takes locks (readRequest).
var lockFreeCommands = map[string]bool{
	"hello": true, "isMaster": true, "ismaster": true, "ping": true, "buildInfo": true,
	"buildinfo": true, "getParameter": true, "endSessions": true, "saslStart": true,
	"saslContinue": true, "connectionStatus": true, "whatsmyuri": true, "hostInfo": true,
	"listCommands": true, "getCmdLineOpts": true, "getLog": true, "logout": true,
	"find": true, "getMore": true, "count": true, "distinct": true, "aggregate": true,
	"listCollections": true, "listDatabases": true, "listIndexes": true, "explain": true,
	"dbStats": true, "dbstats": true, "collStats": true, "dataSize": true,
	"serverStatus": true, "killCursors": true, "currentOp": true, "validate": true,
	"insert": true,
}

// cString splits a NUL-terminated string off the front of b ("" when unterminated).
func cString(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return "", nil
}

// expectsNoReply reports an OP_MSG sent with moreToCome (an unacknowledged write).
func expectsNoReply(message []byte) bool {
	if binary.LittleEndian.Uint32(message[12:16]) != opMsg || len(message) < headerSize+4 {
		return false
	}
	return binary.LittleEndian.Uint32(message[16:20])&moreToComeFlag != 0
}
