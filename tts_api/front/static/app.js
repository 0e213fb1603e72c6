// The tts-api web page: streams speech from POST /v1/audio/speech as server-sent events carrying 24 kHz
// 16-bit PCM, plays each delta the moment it arrives (Web Audio buffers scheduled back to back), and
// highlights the word being spoken from the speech.word_timestamps events. "Speak as I type" sends each word
// as it is typed over the ElevenLabs multi-stream-input socket, which speaks each sentence once it is sure.
// Talks to this server only.
"use strict";

const SAMPLE_RATE = 24000; // the server's pcm: signed 16-bit little-endian, mono, no header
const START_LEAD_S = 0.05; // schedule a buffer this far ahead of "now" so its start is not clipped
const TICK_MS = 40; // how often the highlight follows the playback position
const LANGUAGE_NAMES = {
  a: "American English", b: "British English", e: "Spanish", f: "French", h: "Hindi",
  i: "Italian", j: "Japanese", p: "Brazilian Portuguese", z: "Mandarin Chinese",
};
const BLEND = "__blend__";
const LIVE_FORMAT = "pcm_24000"; // the socket's name for the same s16le PCM
const KEEPALIVE_MS = 10000; // the socket closes after 20 s without a message, typing or not

// What the page did, for people (the status line) and for the browser test (window.ttsState).
const state = {
  status: "ready", error: null, firstAudioMs: null, deltas: 0, scheduledSamples: 0,
  words: [], highlighted: [], done: false,
  sent: [], // speak as I type: the socket messages sent, in order
};
window.ttsState = state;

const $ = (id) => document.getElementById(id);

/** Plays s16le PCM pieces back to back and knows which second of the response is playing now. */
class PcmPlayer {
  constructor() {
    this.ctx = null;
  }

  start() {
    this.stop();
    this.ctx = new AudioContext({ sampleRate: SAMPLE_RATE });
    this.ctx.resume();
    this.nextTime = 0;
    this.seconds = 0;
    this.segments = []; // {at: context time, offset: response seconds, duration}
    this.pieces = []; // the PCM as received, for a WAV download
    this.carry = null; // an odd trailing byte waits for its partner
  }

  /** Schedule `bytes` (a Uint8Array of PCM); return the number of samples scheduled. */
  push(bytes) {
    if (this.carry !== null) {
      const joined = new Uint8Array(bytes.length + 1);
      joined[0] = this.carry;
      joined.set(bytes, 1);
      bytes = joined;
      this.carry = null;
    }
    const samples = bytes.length >> 1;
    if (bytes.length & 1) this.carry = bytes[bytes.length - 1];
    if (samples === 0) return 0;
    const pcm = bytes.slice(0, samples * 2);
    this.pieces.push(pcm);
    const view = new DataView(pcm.buffer);
    const buffer = this.ctx.createBuffer(1, samples, SAMPLE_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples; i++) channel[i] = view.getInt16(2 * i, true) / 32768;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    // Back to back; if the network fell behind, start again a little after now.
    const at = Math.max(this.nextTime, this.ctx.currentTime + START_LEAD_S);
    source.start(at);
    const duration = samples / SAMPLE_RATE;
    this.segments.push({ at, offset: this.seconds, duration });
    this.nextTime = at + duration;
    this.seconds += duration;
    return samples;
  }

  /** Seconds of the response's audio played so far (gaps excluded); null before the first sample. */
  position() {
    if (!this.ctx) return null;
    const now = this.ctx.currentTime;
    for (let k = this.segments.length - 1; k >= 0; k--) {
      const s = this.segments[k];
      if (s.at <= now) return s.offset + Math.min(now - s.at, s.duration);
    }
    return null;
  }

  finished() {
    return this.ctx !== null && this.ctx.currentTime >= this.nextTime;
  }

  stop() {
    if (this.ctx) this.ctx.close();
    this.ctx = null;
  }

  wav() {
    const size = this.pieces.reduce((n, p) => n + p.length, 0);
    const header = new DataView(new ArrayBuffer(44));
    const text = (at, s) => [...s].forEach((c, i) => header.setUint8(at + i, c.charCodeAt(0)));
    text(0, "RIFF");
    header.setUint32(4, 36 + size, true);
    text(8, "WAVE");
    text(12, "fmt ");
    header.setUint32(16, 16, true); // fmt chunk size
    header.setUint16(20, 1, true); // PCM
    header.setUint16(22, 1, true); // mono
    header.setUint32(24, SAMPLE_RATE, true);
    header.setUint32(28, SAMPLE_RATE * 2, true); // bytes per second
    header.setUint16(32, 2, true); // block align
    header.setUint16(34, 16, true); // bits per sample
    text(36, "data");
    header.setUint32(40, size, true);
    return new Blob([header, ...this.pieces], { type: "audio/wav" });
  }
}

const player = new PcmPlayer();
let controller = null; // aborts the request in flight
let lastRequest = null; // the body of the last synthesis, for the download
let ticker = null;

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showError(message) {
  state.error = message;
  $("error").textContent = message;
  $("error").hidden = false;
  setStatus("failed");
}

function clearError() {
  state.error = null;
  $("error").hidden = true;
  $("error").textContent = "";
}

function setStatus(status) {
  state.status = status;
  $("state").textContent = status;
}

/** The server's own message from an OpenAI-shaped JSON error body. */
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (e) {
    // not JSON: fall through to the status line
  }
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

// ----- voices ------------------------------------------------------------------------------------

async function loadVoices() {
  let response;
  try {
    response = await fetch("/v1/audio/voices", { headers: authHeaders() });
  } catch (e) {
    showError(`cannot reach the server: ${e.message}`);
    return;
  }
  if (!response.ok) {
    showError(await errorMessage(response));
    return;
  }
  if (state.error) clearError();
  const { voices, aliases, languages } = await response.json();
  const select = $("voice");
  const chosen = select.value || "af_heart";
  select.replaceChildren();
  for (const code of Object.keys(languages)) {
    const group = document.createElement("optgroup");
    group.label = `${LANGUAGE_NAMES[code] || code} (${languages[code]})`;
    for (const voice of voices.filter((v) => v.lang_code === code)) {
      const option = new Option(`${voice.id} · ${voice.gender}`, voice.id);
      if (!voice.available) {
        option.disabled = true;
        option.text += " (language not installed)";
      }
      group.append(option);
    }
    if (group.children.length) select.append(group);
  }
  const openai = document.createElement("optgroup");
  openai.label = "OpenAI voice names";
  for (const [alias, target] of Object.entries(aliases)) openai.append(new Option(`${alias} → ${target}`, alias));
  select.append(openai);
  const other = document.createElement("optgroup");
  other.label = "Other";
  other.append(new Option("Blend of voices…", BLEND));
  select.append(other);
  select.value = chosen;
  if (!select.value) select.value = "af_heart";
  onVoiceChange();
}

function onVoiceChange() {
  $("blend-label").hidden = $("voice").value !== BLEND;
}

function chosenVoice() {
  return $("voice").value === BLEND ? $("blend").value.trim() : $("voice").value;
}

// ----- speech ------------------------------------------------------------------------------------

/** Yield the JSON events of a text/event-stream response as they arrive. */
async function* serverEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function resetRun(text) {
  Object.assign(state, {
    error: null, firstAudioMs: null, deltas: 0, scheduledSamples: 0, words: [], highlighted: [], done: false,
  });
  clearError();
  $("first-audio").textContent = "–";
  $("audio-seconds").textContent = "0.0 s";
  $("download").disabled = true;
  renderReading(text, null);
}

async function speak(event) {
  event.preventDefault();
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  const text = $("text").value;
  resetRun(text);
  lastRequest = {
    model: "kokoro",
    input: text,
    voice: chosenVoice(),
    speed: Number($("speed").value),
    // The same seed makes the downloaded file the audio that was heard (Kokoro adds random noise).
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  player.start();
  startTicker(text);
  setStatus("requesting");
  $("stop").disabled = false;
  const sentAt = performance.now();
  try {
    const response = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ ...lastRequest, response_format: "pcm", stream_format: "sse" }),
      signal,
    });
    if (!response.ok) {
      showError(await errorMessage(response));
      return;
    }
    for await (const ev of serverEvents(response)) {
      if (ev.type === "speech.audio.delta") {
        if (state.firstAudioMs === null) {
          state.firstAudioMs = performance.now() - sentAt;
          $("first-audio").textContent = `${(state.firstAudioMs / 1000).toFixed(2)} s`;
          setStatus("playing");
        }
        state.deltas += 1;
        state.scheduledSamples += player.push(base64Bytes(ev.audio));
        $("audio-seconds").textContent = `${player.seconds.toFixed(1)} s`;
      } else if (ev.type === "speech.word_timestamps") {
        state.words.push(...ev.words);
      } else if (ev.type === "speech.audio.done") {
        state.done = true;
      } else if (ev.type === "error") {
        showError(ev.error && ev.error.message ? ev.error.message : "synthesis failed");
        return;
      }
    }
    if (!state.done) {
      showError("the server ended the stream before the audio was complete");
      return;
    }
    $("download").disabled = false;
  } catch (e) {
    if (!signal.aborted) showError(`the request failed: ${e.message}`);
  } finally {
    if (controller && controller.signal === signal) $("stop").disabled = true;
  }
}

function stop() {
  if (live) {
    $("live").checked = false;
    endLive(true);
    return;
  }
  if (controller) controller.abort();
  player.stop();
  stopTicker();
  setStatus("stopped");
  $("stop").disabled = true;
  if (state.scheduledSamples > 0) $("download").disabled = false;
}

// ----- speak as I type ---------------------------------------------------------------------------

// The socket, the context its words go to and the text sent so far; null while the box is unchecked.
let live = null;
let liveContexts = 0;

function liveUrl() {
  const params = new URLSearchParams({ output_format: LIVE_FORMAT });
  const key = $("api-key").value.trim();
  if (key) params.set("api_key", key); // a browser's socket cannot send headers
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const voice = encodeURIComponent(chosenVoice());
  return `${scheme}://${location.host}/v1/text-to-speech/${voice}/multi-stream-input?${params}`;
}

function liveSend(message) {
  state.sent.push(message);
  live.socket.send(JSON.stringify(message));
}

/** Open the socket; what the box holds now stays unspoken, what is typed after it is spoken. */
function startLive() {
  if (controller) controller.abort();
  stopTicker();
  resetRun("");
  Object.assign(state, { sent: [] });
  player.start();
  const socket = new WebSocket(liveUrl());
  const session = {
    socket, context: `page-${++liveContexts}`, text: $("text").value, open: false, ending: false, at: null,
  };
  session.keepalive = setInterval(() => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ text: "" }));
  }, KEEPALIVE_MS);
  live = session;
  $("speak").disabled = true;
  $("stop").disabled = false;
  setStatus("connecting");
  socket.onopen = () => setStatus("listening");
  socket.onmessage = (event) => {
    if (live !== session) return; // a stopped socket's last words are not played
    const message = JSON.parse(event.data);
    if (message.audio) {
      if (state.firstAudioMs === null) {
        state.firstAudioMs = performance.now() - session.at;
        $("first-audio").textContent = `${(state.firstAudioMs / 1000).toFixed(2)} s`;
      }
      setStatus("playing");
      state.deltas += 1;
      state.scheduledSamples += player.push(base64Bytes(message.audio));
      $("audio-seconds").textContent = `${player.seconds.toFixed(1)} s`;
    } else if (message.isFinal) {
      state.done = true;
      setStatus("finished");
      socket.close();
    } else if (message.message) {
      showError(message.message);
    }
  };
  socket.onclose = (event) => {
    clearInterval(session.keepalive);
    if (live !== session) return;
    live = null;
    $("live").checked = false;
    $("speak").disabled = false;
    $("stop").disabled = true;
    if (!state.done && !state.error) showError(event.reason || `the socket closed (code ${event.code})`);
  };
  socket.onerror = () => {
    if (live === session && !state.error) showError("cannot open the socket to the server");
  };
}

/** Send the words typed since the last message: whole words only (the word being typed waits). */
function liveTyped(whole = false) {
  if (!live || live.ending || live.socket.readyState !== WebSocket.OPEN) return;
  const text = $("text").value;
  if (!text.startsWith(live.text)) {
    live.text = text; // an edit of what was said already: what was said stays said
    return;
  }
  const added = text.slice(live.text.length);
  const end = whole ? added.length - 1 : Math.max(...[" ", "\n", "\t"].map((c) => added.lastIndexOf(c)));
  if (end < 0 || !added.slice(0, end + 1).trim()) return;
  const piece = added.slice(0, end + 1);
  if (!live.open) {
    liveSend({ text: " ", context_id: live.context, voice_settings: { speed: Number($("speed").value) } });
    live.open = true;
    live.at = performance.now();
  }
  liveSend({ text: piece, context_id: live.context });
  live.text += piece;
  renderReading(text, null);
}

/** Enter: speak what was typed now, the sentence unfinished too. */
function liveFlush(event) {
  if (!live || event.key !== "Enter" || event.shiftKey) return;
  setTimeout(() => {
    liveTyped(); // the newline ends the last word
    if (live && live.open && !live.ending) liveSend({ context_id: live.context, flush: true });
  });
}

/** Unchecked: the turn ends (the rest is spoken, then the socket closes). Stop: silence now. */
function endLive(now) {
  if (!live) return;
  const session = live;
  if (!now) liveTyped(true); // the word being typed too
  if (now || !session.open || session.socket.readyState !== WebSocket.OPEN) {
    live = null;
    clearInterval(session.keepalive);
    session.socket.close();
    player.stop();
    setStatus("stopped");
    $("speak").disabled = false;
    $("stop").disabled = true;
  } else {
    // After a flush, closing the context ends the turn: the rest is spoken, then isFinal closes the socket.
    liveSend({ context_id: session.context, flush: true });
    liveSend({ context_id: session.context, close_context: true });
    session.ending = true;
  }
}

function onLiveChange() {
  if ($("live").checked) startLive();
  else endLive(false);
}

// ----- the word being spoken ---------------------------------------------------------------------

/** Show `text` with the word at `word` (char_start/char_end into the input) marked. */
function renderReading(text, word) {
  const reading = $("reading");
  reading.replaceChildren();
  if (!word) {
    reading.append(text);
    return;
  }
  const mark = document.createElement("mark");
  mark.textContent = text.slice(word.char_start, word.char_end);
  reading.append(text.slice(0, word.char_start), mark, text.slice(word.char_end));
  mark.scrollIntoView({ block: "nearest" });
}

function startTicker(text) {
  stopTicker();
  let current = -1;
  ticker = setInterval(() => {
    const position = player.position();
    if (position === null) return;
    // The word being spoken is the last one that has started (it stays lit through the pause after it).
    let index = -1;
    for (let k = 0; k < state.words.length && state.words[k].start <= position; k++) index = k;
    if (index !== current) {
      current = index;
      renderReading(text, index >= 0 ? state.words[index] : null);
      if (index >= 0) state.highlighted.push(index);
    }
    if (state.done && player.finished()) {
      renderReading(text, null);
      setStatus("finished");
      stopTicker();
    }
  }, TICK_MS);
}

function stopTicker() {
  if (ticker !== null) clearInterval(ticker);
  ticker = null;
}

// ----- download ----------------------------------------------------------------------------------

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function download() {
  const format = $("format").value;
  if (format === "wav") return save(player.wav(), "speech.wav");
  if (format === "pcm") return save(new Blob(player.pieces, { type: "audio/pcm" }), "speech.pcm");
  // Other formats are encoded by the server: ask again for the whole file, with the same seed.
  const button = $("download");
  button.disabled = true;
  try {
    const response = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ ...lastRequest, response_format: format, stream: false }),
    });
    if (!response.ok) return showError(await errorMessage(response));
    save(await response.blob(), `speech.${format}`);
  } catch (e) {
    showError(`the download failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// ----- wiring ------------------------------------------------------------------------------------

function updateSpeed() {
  $("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`;
}

document.addEventListener("DOMContentLoaded", () => {
  $("speak-form").addEventListener("submit", speak);
  $("stop").addEventListener("click", stop);
  $("download").addEventListener("click", download);
  $("voice").addEventListener("change", onVoiceChange);
  $("speed").addEventListener("input", updateSpeed);
  $("api-key").addEventListener("change", loadVoices);
  $("live").addEventListener("change", onLiveChange);
  $("text").addEventListener("input", () => liveTyped());
  $("text").addEventListener("keydown", liveFlush);
  updateSpeed();
  renderReading($("text").value, null);
  $("text").addEventListener("input", () => {
    if (state.status !== "playing") renderReading($("text").value, null);
  });
  loadVoices().then(() => {
    document.body.dataset.ready = "true";
  });
});
