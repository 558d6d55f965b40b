package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"syscall"
)

// Batch work — the messaging service's bulk jobs — logs in to FerretDB as batchRole
// (PLAIN, THREADLINE_MONGODB_BATCH_URL), so FerretDB 1.24 serves it from a PostgreSQL
// connection pool of its own (one pool per user: backends/postgresql/metadata/pool).
// FerretDB reaches PostgreSQL through a priorityRelay, which lowers the CPU priority of
// the backends that pool logs in to: where the services and the servers share a few
// cores, the job's inserts then yield the CPU to the interactive requests' queries the
// way the bulk worker process itself does (it runs at nice 10). In the bulk benchmark
// these backends used a third of a core during a job.
const batchRole = "threadline_batch"

// batchRoleSQL creates batchRole (trust authentication, as every local role: the
// password in the URL is not checked). A superuser, like the role FerretDB uses
// otherwise: it creates schemas, tables and indexes as collections appear.
const batchRoleSQL = `
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + batchRole + `') THEN
        CREATE ROLE ` + batchRole + ` LOGIN SUPERUSER;
    END IF;
END $$;
`

const (
	maxStartupPacket = 10000 // PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH)
	maxLoginMessage  = 1 << 16
	sslRequestCode   = 80877103
	gssRequestCode   = 80877104
	cancelCode       = 80877102
)

// priorityRelay relays FerretDB's PostgreSQL connections unchanged and renices the
// backend of each connection that logs in as role to niceness (the backend's process
// id comes in its BackendKeyData message, before the connection is ready).
type priorityRelay struct {
	postgres string
	role     string
	niceness int
}

// serve relays every connection accepted on listener until it is closed.
func (r priorityRelay) serve(listener net.Listener) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		go r.relay(conn)
	}
}

func (r priorityRelay) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", r.postgres)
	if err != nil {
		log.Printf("connect to postgresql: %v", err)
		return
	}
	defer server.Close()
	user, err := forwardStartup(client, server)
	if err != nil {
		return
	}
	go func() {
		io.Copy(server, client)
		server.Close()
	}()
	fromServer := bufio.NewReader(server)
	if user == r.role {
		pid, err := forwardUntilBackendKey(fromServer, client)
		if err != nil {
			return
		}
		if pid != 0 {
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, pid, r.niceness); err != nil {
				log.Printf("renice postgresql backend %d: %v", pid, err)
			}
		}
	}
	io.Copy(client, fromServer)
}

// forwardStartup passes the client's first packets to the server and returns the user its
// startup message names ("" for a cancel request, or once the session is encrypted).
func forwardStartup(client, server net.Conn) (string, error) {
	for {
		packet, err := readStartupPacket(client)
		if err != nil {
			return "", err
		}
		if _, err := server.Write(packet); err != nil {
			return "", err
		}
		switch binary.BigEndian.Uint32(packet[4:8]) {
		case sslRequestCode, gssRequestCode:
			answer := make([]byte, 1)
			if _, err := io.ReadFull(server, answer); err != nil {
				return "", err
			}
			if _, err := client.Write(answer); err != nil {
				return "", err
			}
			if answer[0] != 'N' {
				return "", nil
			}
		case cancelCode:
			return "", nil
		default:
			return startupUser(packet[8:]), nil
		}
	}
}

func readStartupPacket(r io.Reader) ([]byte, error) {
	header := make([]byte, 8)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint32(header[0:4]))
	if size < 8 || size > maxStartupPacket {
		return nil, fmt.Errorf("invalid startup packet length %d", size)
	}
	packet := make([]byte, size)
	copy(packet, header)
	_, err := io.ReadFull(r, packet[8:])
	return packet, err
}

// startupUser reads the `user` parameter of a startup message's name/value pairs.
func startupUser(parameters []byte) string {
	for len(parameters) > 0 {
		var name, value string
		name, parameters = cString(parameters)
		value, parameters = cString(parameters)
		if name == "user" {
			return value
		}
	}
	return ""
}

// forwardUntilBackendKey passes the server's login messages to the client until its
// BackendKeyData, and returns the backend's process id (0 when the login ends without one).
func forwardUntilBackendKey(fromServer *bufio.Reader, client net.Conn) (int, error) {
	for {
		header := make([]byte, 5)
		if _, err := io.ReadFull(fromServer, header); err != nil {
			return 0, err
		}
		size := int(binary.BigEndian.Uint32(header[1:5]))
		if size < 4 || size > maxLoginMessage {
			return 0, errors.New("invalid message length during login")
		}
		message := make([]byte, 1+size)
		copy(message, header)
		if _, err := io.ReadFull(fromServer, message[5:]); err != nil {
			return 0, err
		}
		if _, err := client.Write(message); err != nil {
			return 0, err
		}
		switch header[0] {
		case 'K':
			if size >= 12 {
				return int(int32(binary.BigEndian.Uint32(message[5:9]))), nil
			}
		case 'Z', 'E':
			return 0, nil
		}
	}
}
