package schemas

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// structTag makes msgpack use the json tags, so the field names seen in KV
// and on the bus are the ones the HTTP API documents.
const structTag = "json"

// Marshal encodes v for the bus and KV.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.SetCustomStructTag(structTag)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("msgpack encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// Unmarshal decodes data produced by Marshal into v. Unknown fields are
// ignored so that older components can read objects written by newer ones.
func Unmarshal(data []byte, v any) error {
	if err := checkShape(data); err != nil {
		return fmt.Errorf("msgpack decode %T: %w", v, err)
	}
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(data))
	dec.SetCustomStructTag(structTag)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("msgpack decode %T: %w", v, err)
	}
	return nil
}
