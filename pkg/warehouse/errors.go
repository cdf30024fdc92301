package warehouse

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Class says what a caller should do about an error.
type Class int

const (
	// Transient: retry later (server down, timeout, too many parts, memory).
	Transient Class = iota
	// Permanent: the data itself was rejected; retrying cannot help, so the
	// row is dead-lettered.
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "transient"
}

// ClickHouse exception codes that say the data, not the server, is at fault.
var permanentCodes = map[int32]bool{
	6:   true,  // CANNOT_PARSE_TEXT
	26:  true,  // CANNOT_PARSE_QUOTED_STRING
	27:  true,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  true,  // CANNOT_PARSE_DATE
	41:  true,  // CANNOT_PARSE_DATETIME
	53:  true,  // TYPE_MISMATCH
	69:  true,  // ARGUMENT_OUT_OF_BOUND
	70:  true,  // CANNOT_CONVERT_TYPE
	72:  true,  // CANNOT_PARSE_NUMBER
	131: true,  // TOO_LARGE_STRING_SIZE
	252: false, // TOO_MANY_PARTS: transient, back off and retry
}

// Classify decides retry vs dead-letter from the server's exception code
// (via errors.As), and treats network and context errors as transient.
// Unknown errors are transient: retrying a good row is cheap, dropping it
// to the dead-letter stream is not.
func Classify(err error) Class {
	if err == nil {
		return Transient
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		if permanentCodes[ex.Code] {
			return Permanent
		}
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) {
		return Transient
	}
	return Transient
}
