package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os/exec"
	"syscall"
	"testing"
)

// message builds a PostgreSQL protocol message: type, length, body.
func message(kind byte, body []byte) []byte {
	out := []byte{kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(4+len(body)))
	return append(out, body...)
}

func startupMessage(user string) []byte {
	body := binary.BigEndian.AppendUint32(nil, 196608) // protocol 3.0
	body = append(body, "user\x00"+user+"\x00database\x00postgres\x00\x00"...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))), body...)
}

func sslRequest() []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), sslRequestCode)
}

// fakePostgres answers one connection: refuses SSL if asked, reads the startup message,
// logs the client in with BackendKeyData naming backendPid, then echoes one message.
// It sends what it received first on got.
func fakePostgres(t *testing.T, backendPid int, got chan<- []byte) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		packet, err := readStartupPacket(conn)
		if err != nil {
			return
		}
		if binary.BigEndian.Uint32(packet[4:8]) == sslRequestCode {
			conn.Write([]byte{'N'})
			if packet, err = readStartupPacket(conn); err != nil {
				return
			}
		}
		got <- packet
		key := binary.BigEndian.AppendUint32(nil, uint32(backendPid))
		conn.Write(bytes.Join([][]byte{
			message('R', []byte{0, 0, 0, 0}),
			message('S', []byte("server_version\x0015\x00")),
			message('K', binary.BigEndian.AppendUint32(key, 42)),
			message('Z', []byte{'I'}),
		}, nil))
		query := make([]byte, 64)
		n, _ := conn.Read(query)
		conn.Write(query[:n])
	}()
	return listener.Addr().String()
}

// backend is a stand-in process for a PostgreSQL backend (killed at the end of the test).
func backend(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func niceness(t *testing.T, pid int) int {
	t.Helper()
	priority, err := syscall.Getpriority(syscall.PRIO_PROCESS, pid)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - priority // the raw system call answers 20 - nice
}

// login connects through a relay in front of fakePostgres as user, checks that the login
// and a query pass unchanged both ways, and returns the stand-in backend's niceness.
func login(t *testing.T, user string, askSSL bool) int {
	t.Helper()
	pid := backend(t)
	got := make(chan []byte, 1)
	relay := priorityRelay{postgres: fakePostgres(t, pid, got), role: batchRole, niceness: 7}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	go relay.serve(listener)

	conn, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if askSSL {
		conn.Write(sslRequest())
		answer := make([]byte, 1)
		if _, err := io.ReadFull(conn, answer); err != nil || answer[0] != 'N' {
			t.Fatalf("SSL answer %q, %v", answer, err)
		}
	}
	startup := startupMessage(user)
	conn.Write(startup)
	if received := <-got; !bytes.Equal(received, startup) {
		t.Fatalf("server got %q, client sent %q", received, startup)
	}
	for _, kind := range []byte{'R', 'S', 'K', 'Z'} {
		header := make([]byte, 5)
		if _, err := io.ReadFull(conn, header); err != nil {
			t.Fatal(err)
		}
		if header[0] != kind {
			t.Fatalf("got message %q, want %q", header[0], kind)
		}
		io.ReadFull(conn, make([]byte, binary.BigEndian.Uint32(header[1:])-4))
	}
	query := message('Q', []byte("SELECT 1\x00"))
	conn.Write(query)
	echoed := make([]byte, len(query))
	if _, err := io.ReadFull(conn, echoed); err != nil || !bytes.Equal(echoed, query) {
		t.Fatalf("query came back as %q, %v", echoed, err)
	}
	return niceness(t, pid)
}

func TestTheBatchRolesBackendIsReniced(t *testing.T) {
	if got := login(t, batchRole, false); got != 7 {
		t.Fatalf("backend niceness %d, want 7", got)
	}
}

func TestTheBatchRolesBackendIsRenicedAfterARefusedSSLRequest(t *testing.T) {
	if got := login(t, batchRole, true); got != 7 {
		t.Fatalf("backend niceness %d, want 7", got)
	}
}

func TestOtherRolesBackendsKeepTheirPriority(t *testing.T) {
	if got := login(t, "postgres", false); got != 0 {
		t.Fatalf("backend niceness %d, want 0", got)
	}
}

func TestStartupUserReadsTheUserParameter(t *testing.T) {
	if got := startupUser(startupMessage("mia")[8:]); got != "mia" {
		t.Fatalf("user %q", got)
	}
	if got := startupUser([]byte("database\x00postgres\x00\x00")); got != "" {
		t.Fatalf("user %q without one", got)
	}
}
