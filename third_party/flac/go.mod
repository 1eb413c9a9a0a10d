module github.com/mewkiz/flac

go 1.24

require (
	github.com/icza/bitio v1.1.0
	github.com/mewkiz/pkg v0.0.0-20230226050401-4010bf0fec14
)
