package bits

import "math/bits"

// ReadRice decodes len(dst) Rice-coded residuals with parameter k (below 32)
// into dst: each a unary-coded quotient, k bits of remainder, the two a
// zigzag-coded integer. The cache and the buffer position are kept in locals
// and the cache refilled 64 bits at a time; only a quotient longer than the
// cache or the end of the buffered bytes go through refill. (Shift counts are
// masked to 6 bits where they are below 64 anyway: Go then shifts with one
// instruction.)
func (br *Reader) ReadRice(dst []int32, k uint) error {
	cache, n, buf, pos := br.cache, br.n, br.buf, br.pos
	for i := range dst {
		if n <= 56 && pos+8 <= len(buf) {
			cache, n, pos = load(cache, n, buf, pos)
		}
		var q uint64
		for {
			if z := uint(bits.LeadingZeros64(cache)); z < n {
				cache = cache << (z & 63) << 1
				n -= z + 1
				q += uint64(z)
				break
			}
			q += uint64(n)
			br.cache, br.n, br.pos = 0, 0, pos
			if err := br.refill(1); err != nil {
				return unexpected(err)
			}
			cache, n, buf, pos = br.cache, br.n, br.buf, br.pos
		}
		if n < k {
			br.cache, br.n, br.pos = cache, n, pos
			if err := br.refill(k); err != nil {
				return unexpected(err)
			}
			cache, n, buf, pos = br.cache, br.n, br.buf, br.pos
		}
		low := cache >> 1 >> ((63 - k) & 63) // 0 for k == 0
		cache <<= k & 63
		n -= k
		folded := uint32(q<<(k&63) | low)
		dst[i] = int32(folded>>1) ^ -int32(folded&1)
	}
	br.cache, br.n, br.pos = cache, n, pos
	return nil
}
