// Chair Studio's 3D view: one WebGL context for the life of the page.
//
// This file is the body of gr.HTML's `js_on_load` (app.py reads it), so it runs once per page
// with `element` (the component's root), `props` (props.value = the mesh payload of
// vaegan/web_mesh.py) and `watch` (calls back after each new value).
//
// Why its own viewer: gr.Model3D builds a new Babylon engine, canvas and WebGL context on every
// new file, and Chromium keeps at most 16 contexts, so after ~15 updates the oldest (the one on
// screen) was lost and the view went blank. Here the canvas, context, shaders and buffers are
// made once; a new chair only refills two buffers (`gl.bufferData`), and the camera (orbit,
// zoom) stays where the user left it. The previous chair stays on screen until the next one is
// ready, so there is no blank frame between chairs.
//
// Controls: drag to orbit, wheel or pinch to zoom, double-click to reset the view.
// For tests and bench/browser.py: the host element's data-frames counts draws,
// data-faces holds the triangle count of the chair on screen and data-payload-at / data-drawn-at
// the performance.now() of the last new chair and of the last draw.

const host = element.querySelector('.chair-viewer');
const note = element.querySelector('.chair-viewer-note');
const canvas = document.createElement('canvas');
canvas.setAttribute('aria-label', '3D view of the current chair: drag to orbit, scroll to zoom, double-click to reset');
host.prepend(canvas);

const HOME = {azimuth: 0.6, elevation: 0.35, distance: 2.0};  // front three-quarter view from above
const view = {...HOME};
const WOOD = [0.78, 0.53, 0.35];  // the project's warm wood (#c8875a), sRGB
const BACKGROUND = [0.96, 0.96, 0.95];

let gl = null, program = null, buffers = null, uniforms = null, attribs = null;
let mesh = null;        // {positions: Float32Array, normals: Float32Array, indices, count, flat}
let queued = false;
let frames = 0;

const VERTEX = `
attribute vec3 position;
attribute vec3 normal;
uniform mat4 viewProjection;
varying vec3 vNormal;
varying vec3 vPosition;
void main() {
  vNormal = normal;
  vPosition = position;
  gl_Position = viewProjection * vec4(position, 1.0);
}`;

const FRAGMENT = `
#extension GL_OES_standard_derivatives : enable
precision mediump float;
uniform vec3 color;
uniform vec3 eye;
uniform float flatShading;
varying vec3 vNormal;
varying vec3 vPosition;
void main() {
  vec3 n = normalize(vNormal);
  if (flatShading > 0.5) n = normalize(cross(dFdx(vPosition), dFdy(vPosition)));
  vec3 toEye = normalize(eye - vPosition);
  if (dot(n, toEye) < 0.0) n = -n;  // the inside of a thin part, seen through a gap
  vec3 key = normalize(vec3(0.5, 0.9, 0.6));
  vec3 fill = normalize(vec3(-0.7, 0.3, -0.4));
  float diffuse = 0.65 * max(dot(n, key), 0.0) + 0.25 * max(dot(n, fill), 0.0);
  float sky = 0.5 + 0.5 * n.y;  // hemisphere ambient: lighter from above
  float specular = 0.12 * pow(max(dot(reflect(-key, n), toEye), 0.0), 24.0);
  vec3 lit = color * (0.28 + 0.17 * sky + diffuse) + specular;
  gl_FragColor = vec4(pow(lit, vec3(1.0 / 1.1)), 1.0);
}`;

function compile(type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS) && !gl.isContextLost()) {
    throw new Error('chair viewer shader: ' + gl.getShaderInfoLog(shader));
  }
  return shader;
}

// (Re)create everything that lives in the context: at start and after a context restore.
function setupContext() {
  // No MSAA: under software WebGL (SwiftShader, e.g. a machine without a GPU) it cost ~50 ms a
  // photo update; at 32^3 the chair's edges barely alias. preserveDrawingBuffer lets tests and
  // bench/browser.py read the pixels on screen.
  gl = canvas.getContext('webgl', {antialias: false, preserveDrawingBuffer: true, alpha: false})
    || canvas.getContext('experimental-webgl', {preserveDrawingBuffer: true});
  if (!gl) {
    note.textContent = 'This browser cannot show 3D (WebGL is off); the downloads still work.';
    return false;
  }
  gl.getExtension('OES_standard_derivatives');
  gl.getExtension('OES_element_index_uint');
  program = gl.createProgram();
  gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(program);
  attribs = {position: gl.getAttribLocation(program, 'position'), normal: gl.getAttribLocation(program, 'normal')};
  uniforms = Object.fromEntries(['viewProjection', 'color', 'eye', 'flatShading']
    .map((name) => [name, gl.getUniformLocation(program, name)]));
  buffers = {position: gl.createBuffer(), normal: gl.createBuffer(), index: gl.createBuffer()};
  gl.enable(gl.DEPTH_TEST);
  if (mesh) upload(mesh);
  return true;
}

function decode(text, Type) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Type(bytes.buffer);
}

// Smooth vertex normals: the area-weighted sum of the normals of the faces around each vertex.
function vertexNormals(positions, indices) {
  const normals = new Float32Array(positions.length);
  for (let f = 0; f < indices.length; f += 3) {
    const a = 3 * indices[f], b = 3 * indices[f + 1], c = 3 * indices[f + 2];
    const ux = positions[b] - positions[a], uy = positions[b + 1] - positions[a + 1], uz = positions[b + 2] - positions[a + 2];
    const vx = positions[c] - positions[a], vy = positions[c + 1] - positions[a + 1], vz = positions[c + 2] - positions[a + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    for (const v of [a, b, c]) { normals[v] += nx; normals[v + 1] += ny; normals[v + 2] += nz; }
  }
  return normals;  // the shader normalises
}

function upload(m) {
  gl.bindBuffer(gl.ARRAY_BUFFER, buffers.position);
  gl.bufferData(gl.ARRAY_BUFFER, m.positions, gl.STATIC_DRAW);
  gl.bindBuffer(gl.ARRAY_BUFFER, buffers.normal);
  gl.bufferData(gl.ARRAY_BUFFER, m.normals, gl.STATIC_DRAW);
  gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffers.index);
  gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, m.indices, gl.STATIC_DRAW);
}

// 'settled': the chair on screen has stayed for SETTLE_MS. The app hangs the slower follow-ups
// (realism score, nearest training chair) on it, so they never compete with a slider drag.
const SETTLE_MS = 400;
let settleTimer = 0;
function settleLater() {
  clearTimeout(settleTimer);
  settleTimer = setTimeout(() => trigger('settled'), SETTLE_MS);
}

function setPayload(payload) {
  if (!payload || typeof payload !== 'object') return;
  settleLater();
  if (payload.message) {  // nothing to draw: keep the last chair, say why
    note.textContent = payload.message;
    return;
  }
  if (!payload.positions || !payload.indices) return;
  const positions = decode(payload.positions, Float32Array);
  const indices = decode(payload.indices, payload.index_type === 'uint32' ? Uint32Array : Uint16Array);
  mesh = {positions, indices, normals: vertexNormals(positions, indices), count: indices.length,
          type: payload.index_type === 'uint32' ? 'uint32' : 'uint16', flat: !!payload.flat};
  note.textContent = '';
  host.dataset.payloadAt = String(performance.now());
  host.dataset.faces = String(payload.face_count || indices.length / 3);
  if (gl && !gl.isContextLost()) upload(mesh);
  redraw();
}

// Column-major 4x4 helpers.
function multiply(a, b) {
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
    out[c * 4 + r] = s;
  }
  return out;
}

function perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
  return new Float32Array([f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0]);
}

function lookAt(eye, target) {
  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const norm = (a) => { const l = Math.hypot(...a) || 1; return a.map((x) => x / l); };
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const z = norm(sub(eye, target)), x = norm(cross([0, 1, 0], z)), y = cross(z, x);
  return new Float32Array([x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0,
                           -dot(x, eye), -dot(y, eye), -dot(z, eye), 1]);
}

function eyePosition() {
  const c = Math.cos(view.elevation);
  return [view.distance * c * Math.sin(view.azimuth), view.distance * Math.sin(view.elevation),
          view.distance * c * Math.cos(view.azimuth)];
}

function draw() {
  queued = false;
  if (!gl || gl.isContextLost()) return;
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  const width = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const height = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  gl.viewport(0, 0, width, height);
  gl.clearColor(...BACKGROUND, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  if (mesh) {
    const eye = eyePosition();
    gl.useProgram(program);
    gl.uniformMatrix4fv(uniforms.viewProjection, false,
      multiply(perspective(0.6, width / height, 0.05, 20), lookAt(eye, [0, -0.03, 0])));
    gl.uniform3fv(uniforms.color, WOOD);
    gl.uniform3fv(uniforms.eye, eye);
    gl.uniform1f(uniforms.flatShading, mesh.flat ? 1 : 0);
    for (const [name, buffer] of [['position', buffers.position], ['normal', buffers.normal]]) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(attribs[name]);
      gl.vertexAttribPointer(attribs[name], 3, gl.FLOAT, false, 0, 0);
    }
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffers.index);
    gl.drawElements(gl.TRIANGLES, mesh.count, mesh.type === 'uint32' ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT, 0);
  }
  frames += 1;
  host.dataset.frames = String(frames);
  host.dataset.drawnAt = String(performance.now());
}

function redraw() {
  if (!queued) { queued = true; requestAnimationFrame(draw); }
}

// Orbit (one pointer), pinch zoom (two), wheel zoom, double-click home.
const pointers = new Map();
let pinch = 0;
canvas.addEventListener('pointerdown', (event) => {
  canvas.setPointerCapture(event.pointerId);
  pointers.set(event.pointerId, [event.clientX, event.clientY]);
});
canvas.addEventListener('pointermove', (event) => {
  const last = pointers.get(event.pointerId);
  if (!last) return;
  const now = [event.clientX, event.clientY];
  pointers.set(event.pointerId, now);
  if (pointers.size === 1) {
    view.azimuth -= (now[0] - last[0]) * 0.01;
    view.elevation = Math.max(-1.45, Math.min(1.45, view.elevation + (now[1] - last[1]) * 0.01));
  } else if (pointers.size === 2) {
    const [p, q] = [...pointers.values()];
    const span = Math.hypot(p[0] - q[0], p[1] - q[1]);
    if (pinch) zoom(pinch / span);
    pinch = span;
  }
  redraw();
});
const release = (event) => { pointers.delete(event.pointerId); pinch = 0; };
canvas.addEventListener('pointerup', release);
canvas.addEventListener('pointercancel', release);
function zoom(factor) { view.distance = Math.max(0.9, Math.min(6, view.distance * factor)); }
canvas.addEventListener('wheel', (event) => {
  event.preventDefault();
  zoom(Math.exp(event.deltaY * 0.0015));
  redraw();
}, {passive: false});
canvas.addEventListener('dblclick', () => { Object.assign(view, HOME); redraw(); });

// A lost context (GPU reset, too many tabs) is restored by the browser when we ask for it.
canvas.addEventListener('webglcontextlost', (event) => { event.preventDefault(); });
canvas.addEventListener('webglcontextrestored', () => { setupContext(); redraw(); });
new ResizeObserver(redraw).observe(canvas);

if (setupContext()) {
  setPayload(props.value);
  watch('value', () => setPayload(props.value));
  redraw();
}
