// A gRPC server that nobody on this project wrote the HTTP/2 or gRPC of
// (grpc-go): one unary method, /x.Echo/Ping, answering an empty message to
// any request. scripts/grpc_rtt.ts times grpc-js's round trips against it and
// against the same server on grpc-js. It prints its port, then serves.
package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// rawCodec passes messages through as bytes: no generated code is needed.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(d []byte, v any) error { *(v.(*[]byte)) = append([]byte(nil), d...); return nil }
func (rawCodec) Name() string                    { return "proto" }

func ping(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	out := []byte{}
	return &out, nil
}

func main() {
	encoding.RegisterCodec(rawCodec{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "x.Echo",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Ping", Handler: ping}},
	}, struct{}{})
	fmt.Println(lis.Addr().(*net.TCPAddr).Port)
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
