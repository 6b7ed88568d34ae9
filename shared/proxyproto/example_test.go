package proxyproto_test

import (
	"errors"
	"fmt"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// An event loop calls Parse on whatever has arrived, keeps the bytes while
// the header is incomplete, and hands what follows it to the question
// parser.
func ExampleParse() {
	var buf []byte
	for _, read := range []string{"PROXY TCP4 192.0.2.1 198.51.100.1 ", "56324 443\r\nWhat is your name?"} {
		buf = append(buf, read...)
		h, n, err := proxyproto.Parse(buf, proxyproto.Auto)
		if errors.Is(err, proxyproto.ErrIncomplete) {
			fmt.Println("waiting for more bytes")
			continue
		}
		if err != nil {
			fmt.Println("close:", err)
			return
		}
		fmt.Printf("client %v, first data %q\n", h.Source, buf[n:])
	}
	// Output:
	// waiting for more bytes
	// client 192.0.2.1:56324, first data "What is your name?"
}
