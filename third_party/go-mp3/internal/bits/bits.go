// Copyright 2017 Hajime Hoshi
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package bits

import "slices"

type Bits struct {
	vec     []byte
	bitPos  int
	bytePos int
}

func New(vec []byte) *Bits {
	return &Bits{
		vec: vec,
	}
}

// Refill keeps the last keep bytes of the buffer at its start, makes room
// for n more after them, which it returns for the caller to fill, and reads
// from the start again.
func (b *Bits) Refill(keep, n int) []byte {
	copy(b.vec, b.vec[len(b.vec)-keep:])
	b.vec = slices.Grow(b.vec[:keep], n)[:keep+n]
	b.bytePos, b.bitPos = 0, 0
	return b.vec[keep:]
}

func (b *Bits) Bit() int {
	if len(b.vec) <= b.bytePos {
		// TODO: Should this return error?
		return 0
	}
	tmp := uint(b.vec[b.bytePos]) >> (7 - uint(b.bitPos))
	tmp &= 0x01
	b.bytePos += (b.bitPos + 1) >> 3
	b.bitPos = (b.bitPos + 1) & 0x07
	return int(tmp)
}

func (b *Bits) Bits(num int) int {
	if num == 0 {
		return 0
	}
	if len(b.vec) <= b.bytePos {
		// TODO: Should this return error?
		return 0
	}
	var bb [4]byte
	copy(bb[:], b.vec[b.bytePos:])
	tmp := (uint32(bb[0]) << 24) | (uint32(bb[1]) << 16) | (uint32(bb[2]) << 8) | (uint32(bb[3]))
	tmp <<= uint(b.bitPos)
	tmp >>= (32 - uint(num))
	b.bytePos += (b.bitPos + num) >> 3
	b.bitPos = (b.bitPos + num) & 0x07
	return int(tmp)
}

// Peek32 is the next 32 bits, the first one highest, if the buffer holds
// them.
func (b *Bits) Peek32() (uint32, bool) {
	if b.bytePos+5 > len(b.vec) {
		return 0, false
	}
	v := b.vec[b.bytePos : b.bytePos+5]
	hi := uint64(v[0])<<32 | uint64(v[1])<<24 | uint64(v[2])<<16 | uint64(v[3])<<8 | uint64(v[4])
	return uint32(hi >> (8 - uint(b.bitPos))), true
}

// Skip moves past n bits, which the buffer holds.
func (b *Bits) Skip(n int) {
	b.bytePos += (b.bitPos + n) >> 3
	b.bitPos = (b.bitPos + n) & 0x07
}

func (b *Bits) BitPos() int {
	return b.bytePos<<3 + b.bitPos
}

func (b *Bits) SetPos(pos int) {
	b.bytePos = pos >> 3
	b.bitPos = pos & 0x7
}

func (b *Bits) LenInBytes() int {
	return len(b.vec)
}
