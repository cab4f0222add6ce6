// A grpc-go stand-in for Teleport's Auth Service: the HTTP/2, TLS and gRPC
// of a real Teleport (grpc-go, Go's crypto/tls with mutual TLS, ALPN h2),
// and none of its logic. tests/teleport_go.ts drives it over stdin, for
// tests/teleport_go_test.ts and `deno task bench --teleport go`:
//
//	R <method> [<base64>] the answer to every call of a unary method (full
//	                      name, "/proto.AuthService/Ping"; no bytes: an empty
//	                      message); unset: UNIMPLEMENTED
//	I <base64>            the first event of every WatchEvents stream (INIT)
//	E <base64>            an event for every open WatchEvents stream
//	C                     prints {"calls":{method:count},"watchers":n} on stdout
//	G                     ends every watch stream (UNAVAILABLE, as a Teleport
//	                      shutting down; new ones are refused meanwhile), stops
//	                      gracefully (GOAWAY; hard after 5 s), serves again on
//	                      the same port, then prints "restarted"
//
// Messages are bytes the driver encoded with the project's schema, so this
// file needs no generated code. UpdatePluginData's compare-and-swap is not
// checked (every write succeeds): one plugin, fresh requests. It prints its
// port, then serves until stdin closes.
//
//	go run . <server cert PEM> <server key PEM> <CA PEM>
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"time"
)

// rawCodec passes messages through as bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(d []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), d...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

const watchMethod = "/proto.AuthService/WatchEvents"

type server struct {
	mu      sync.Mutex
	answers map[string][]byte
	init    []byte
	calls   map[string]int
	// Each open watch stream: its events, and a channel closed to end it.
	watchers map[chan []byte]chan struct{}
	// While "G" runs: new watch streams are refused, as by a Teleport shutting down, so that
	// none opened after the others were ended keeps GracefulStop waiting.
	stopping bool
}

func (s *server) handle(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	var req []byte
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	s.mu.Lock()
	s.calls[method]++
	if method == watchMethod {
		if s.stopping {
			s.mu.Unlock()
			return status.Error(codes.Unavailable, "the auth server is shutting down")
		}
		events := make(chan []byte, 1<<16)
		end := make(chan struct{})
		s.watchers[events] = end
		first := s.init
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.watchers, events)
			s.mu.Unlock()
		}()
		if err := stream.SendMsg(&first); err != nil {
			return err
		}
		for {
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-end:
				return status.Error(codes.Unavailable, "watcher closed: the auth server is shutting down")
			case ev := <-events:
				if err := stream.SendMsg(&ev); err != nil {
					return err
				}
			}
		}
	}
	answer, ok := s.answers[method]
	s.mu.Unlock()
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	return stream.SendMsg(&answer)
}

func main() {
	encoding.RegisterCodec(rawCodec{})
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: teleport_go <cert> <key> <ca>")
		os.Exit(2)
	}
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caPEM, err := os.ReadFile(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fmt.Fprintln(os.Stderr, "no CA certificate in", os.Args[3])
		os.Exit(1)
	}
	s := &server{answers: map[string][]byte{}, calls: map[string]int{}, watchers: map[chan []byte]chan struct{}{}}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	serve := func(addr string) (*grpc.Server, int) {
		gs := grpc.NewServer(
			grpc.Creds(creds),
			grpc.UnknownServiceHandler(s.handle),
			// Pings as often as Teleport's Go client sends them (every minute), also without calls.
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Minute, PermitWithoutStream: true}),
		)
		var lis net.Listener
		var err error
		// The old listener's port may take a moment to be free again.
		for try := 0; ; try++ {
			if lis, err = net.Listen("tcp", addr); err == nil || try == 100 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			if err := gs.Serve(lis); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}()
		return gs, lis.Addr().(*net.TCPAddr).Port
	}
	gs, port := serve("127.0.0.1:0")
	fmt.Println(port)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	decode := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad base64:", err)
			os.Exit(1)
		}
		return b
	}
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		switch {
		case fields[0] == "R" && len(fields) >= 2:
			b := []byte{}
			if len(fields) == 3 {
				b = decode(fields[2])
			}
			s.mu.Lock()
			s.answers[fields[1]] = b
			s.mu.Unlock()
		case fields[0] == "I" && len(fields) == 2:
			s.mu.Lock()
			s.init = decode(fields[1])
			s.mu.Unlock()
		case fields[0] == "E" && len(fields) == 2:
			ev := decode(fields[1])
			s.mu.Lock()
			for w := range s.watchers {
				select {
				case w <- ev:
				default:
					fmt.Fprintln(os.Stderr, "a watcher is too far behind: event dropped")
				}
			}
			s.mu.Unlock()
		case fields[0] == "G":
			s.mu.Lock()
			s.stopping = true
			for events, end := range s.watchers {
				close(end)
				delete(s.watchers, events)
			}
			s.mu.Unlock()
			// GOAWAY, then the calls still open may finish; a client that keeps one open
			// longer than that gets its connection closed.
			stopped := make(chan struct{})
			go func(old *grpc.Server) {
				old.GracefulStop()
				close(stopped)
			}(gs)
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				fmt.Fprintln(os.Stderr, "graceful stop still waiting after 5 s: stopping hard")
				gs.Stop()
				<-stopped
			}
			// The old server is gone: the new one takes watches from its first connection.
			s.mu.Lock()
			s.stopping = false
			s.mu.Unlock()
			gs, _ = serve(fmt.Sprintf("127.0.0.1:%d", port))
			fmt.Println("restarted")
		case fields[0] == "C":
			s.mu.Lock()
			calls := map[string]int{}
			for k, v := range s.calls {
				calls[k] = v
			}
			n := len(s.watchers)
			s.mu.Unlock()
			_ = out.Encode(map[string]any{"calls": calls, "watchers": n})
		default:
			fmt.Fprintln(os.Stderr, "unknown command:", in.Text())
		}
	}
	gs.Stop()
}
