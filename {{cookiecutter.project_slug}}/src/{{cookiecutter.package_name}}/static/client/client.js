// A plain browser client of this app's HTTP API, the starting point for a frontend of your own.
// It does what the Gradio UI does, with nothing but the browser: get the ICE configuration,
// connect a WebRTC peer, play what comes back, show the handler's outputs, set its input, and
// hang up. Every request is one of the API's routes (documented at /docs).

// What this app's connections carry: its media, and the direction seen from this page
// ("sendrecv": send and receive, "sendonly": send only, "recvonly": receive only).
const MEDIA = {
  audio: {{ "true" if cookiecutter.__modality != "video" else "false" }},
  video: {{ "true" if cookiecutter.__modality != "audio" else "false" }},
  direction: "{{ {"send-receive": "sendrecv", "send": "sendonly", "receive": "recvonly"}[cookiecutter.__mode] }}",
};
const SENDS = MEDIA.direction !== "recvonly";
const RECEIVES = MEDIA.direction !== "sendonly";

// The API's routes this page uses, as the OpenAPI schema names them.
const ROUTES = {
  configuration: "/webrtc/configuration",
  offer: "/webrtc/offer",
  schema: "/openapi.json",
  input: "/connections/{connection_id}/input",
  outputs: "/connections/{connection_id}/outputs",
};
const ID_BYTES = 16; // a connection id is a capability: make it unguessable

const $ = (id) => document.getElementById(id);
let connection = null; // {id, pc, outputs, local} while connected

/** A route's path for one connection. */
function route(path, id) {
  return path.replace("{connection_id}", encodeURIComponent(id));
}

/** Call the API; its errors are JSON ({"error": code, "detail": text, ...}): throw them. */
async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await response.json().catch(() => ({ error: "http_error", detail: "" }));
    throw new Error(`${response.status} ${error.error}: ${error.detail}`);
  }
  return response.status === 204 ? null : response.json();
}

function showError(error) {
  $("error").textContent = error ? String(error.message ?? error) : "";
}

function showStatus(text) {
  $("status").textContent = text;
}

/** A fresh connection id: 32 random hexadecimal digits. */
function newConnectionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(ID_BYTES));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function connect() {
  showError(null);
  $("connect").disabled = true;
  const id = newConnectionId();
  try {
    // 1. The ICE servers for this one peer (with a TURN credential of its own, if the app has
    //    TURN): ask before each connection, never reuse an old one.
    const configuration = await call("GET", ROUTES.configuration);
    const pc = new RTCPeerConnection(configuration);
    connection = { id, pc, outputs: null, local: null };
    $("hang-up").disabled = false;
    pc.onconnectionstatechange = () => {
      showStatus(`Connection ${id}: ${pc.connectionState}`);
      if (pc.connectionState === "failed") hangUp();
    };

    // 2. A data channel: fastrtc handles media only once one is open, and sends its notices on it.
    const channel = pc.createDataChannel("text");
    channel.onmessage = (event) => onNotice(JSON.parse(event.data));

    // 3. The media: this page's microphone and/or camera if it sends, receive-only slots if not.
    if (SENDS) {
      connection.local = await navigator.mediaDevices.getUserMedia({ audio: MEDIA.audio, video: MEDIA.video });
      for (const track of connection.local.getTracks()) {
        pc.addTransceiver(track, { direction: MEDIA.direction, streams: [connection.local] });
      }
      $("local").srcObject = connection.local;
      $("local").hidden = !MEDIA.video;
    } else {
      for (const kind of ["audio", "video"].filter((kind) => MEDIA[kind])) {
        pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    const remote = new MediaStream();
    pc.ontrack = (event) => remote.addTrack(event.track);
    if (RECEIVES) {
      $("remote").srcObject = remote;
      $("remote").hidden = !MEDIA.video;
    }

    // 4. ICE candidates trickle: the route takes them once the connection exists, that is
    //    after the answer; those found before wait here.
    let answered = false;
    const waiting = [];
    const send = (candidate) =>
      call("POST", ROUTES.offer, { type: "ice-candidate", candidate, webrtc_id: id }).catch(showError);
    pc.onicecandidate = (event) => {
      if (!event.candidate) return; // gathering is over
      answered ? send(event.candidate.toJSON()) : waiting.push(event.candidate.toJSON());
    };

    // 5. The offer, under this page's own id; the answer completes the peer.
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await call("POST", ROUTES.offer, { type: "offer", sdp: pc.localDescription.sdp, webrtc_id: id });
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    answered = true;
    waiting.splice(0).forEach(send);

    // 6. The handler's outputs, as server-sent events until the connection closes.
    connection.outputs = new EventSource(route(ROUTES.outputs, id));
    connection.outputs.onmessage = (event) => showOutputs(JSON.parse(event.data));
  } catch (error) {
    showError(error);
    hangUp();
  }
}

/** A notice from the server over the data channel, e.g. that it closed the connection. */
function onNotice(message) {
  if (message.type === "update_connection" && message.data === "closed") hangUp();
  else if (message.type === "error" || message.type === "warning") showError(`${message.type}: ${message.data}`);
}

/** Close the peer: the server frees the connection at once (no admin DELETE needed). */
function hangUp() {
  if (connection === null) return;
  connection.outputs?.close();
  connection.pc.close();
  connection.local?.getTracks().forEach((track) => track.stop());
  showStatus(`Connection ${connection.id}: closed`);
  connection = null;
  $("connect").disabled = false;
  $("hang-up").disabled = true;
}

/** Show one output: each of its fields, as the handler's Stats model names them. */
function showOutputs(output) {
  const list = $("outputs");
  list.replaceChildren();
  for (const [name, value] of Object.entries(output)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const shown = document.createElement("dd");
    shown.dataset.output = name;
    shown.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    list.append(term, shown);
  }
}

/** Build the input form from the API's schema of the handler's Input model. */
async function buildInputForm() {
  const openapi = await call("GET", ROUTES.schema);
  const body = openapi.paths[ROUTES.input].post.requestBody.content["application/json"].schema;
  const schema = body.$ref ? openapi.components.schemas[body.$ref.replace("#/components/schemas/", "")] : body;
  const form = $("input");
  for (const [name, property] of Object.entries(schema.properties)) {
    const numeric = property.type === "number" || property.type === "integer";
    const field = document.createElement(property.maxLength > 200 ? "textarea" : "input");
    field.name = name;
    field.title = property.description ?? "";
    if (numeric) {
      Object.assign(field, { type: "number", step: property.type === "integer" ? "1" : "any" });
      if (property.minimum !== undefined) field.min = property.minimum;
      if (property.maximum !== undefined) field.max = property.maximum;
    }
    field.value = property.default ?? "";
    field.dataset.numeric = numeric;
    const label = document.createElement("label");
    label.append(`${property.title ?? name} `, field);
    form.insertBefore(label, form.lastElementChild);
  }
  form.onsubmit = (event) => {
    event.preventDefault();
    setInput(form).catch(showError);
  };
}

/** Post the form's values to the connection's input route (409 until its media has started). */
async function setInput(form) {
  if (connection === null) throw new Error("connect first");
  const values = {};
  for (const field of form.querySelectorAll("[name]")) {
    values[field.name] = field.dataset.numeric === "true" ? Number(field.value) : field.value;
  }
  showError(null);
  await call("POST", route(ROUTES.input, connection.id), values);
  showStatus(`Connection ${connection.id}: input set`);
}

$("connect").onclick = connect;
$("hang-up").onclick = hangUp;
window.addEventListener("pagehide", hangUp); // free the connection at once when the page goes
buildInputForm().catch(showError);
