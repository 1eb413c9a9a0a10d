#!/usr/bin/env bash
# Checks the Debian packages tutti needs; installs the missing ones when run
# as root (or with sudo available), otherwise says what to install.
set -euo pipefail
need=()
pkg-config --exists alsa 2>/dev/null || need+=(libasound2-dev pkg-config)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# Encoders the tests use to make MP3, FLAC and Ogg Vorbis files.
command -v flac >/dev/null 2>&1 || need+=(flac)
command -v lame >/dev/null 2>&1 || need+=(lame)
command -v oggenc >/dev/null 2>&1 || need+=(vorbis-tools)
# Opus files for the tests (opusenc), and opusdec, the reference decoder
# they compare tutti's with.
command -v opusenc >/dev/null 2>&1 || need+=(opus-tools)
# ffmpeg: the controller converts M4A songs (AAC, ALAC) to FLAC with it at
# run time; the tests make M4A files with it (AtomicParsley tags them) and
# check the loudness meter against its ebur128 filter.
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v AtomicParsley >/dev/null 2>&1 || need+=(atomicparsley)
# The peer `tutti bench cost` compares a speaker's CPU and memory with.
command -v snapserver >/dev/null 2>&1 || need+=(snapserver)
command -v snapclient >/dev/null 2>&1 || need+=(snapclient)
# A real ALSA device paced in real time for the ALSA output's tests: a
# PulseAudio null sink reached through ALSA's pulse plugin.
command -v pulseaudio >/dev/null 2>&1 || need+=(pulseaudio)
command -v parec >/dev/null 2>&1 || need+=(pulseaudio-utils)
ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1 || need+=(libasound2-plugins)
[ ${#need[@]} -eq 0 ] && exit 0
echo "tutti needs: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo="sudo"; }
if [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; then
	echo "install them with: apt-get install ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
