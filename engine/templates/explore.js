// repscope explorer: linked WebGL scatter plots of a run's embeddings, offline.
//
// Data arrive as scripts that call repscope.put(id, meta, base64) (a page opened from
// file:// may add <script> elements but may not fetch files). One canvas covers the
// window and each panel is drawn into its own rectangle of it, so any number of panels
// share one WebGL context. Each panel keeps its points rendered in a texture (its
// layer), redrawn only when its view, the point size or the classes shown change; a
// selection or a hover redraws a panel as its layer (faded while a selection stands),
// the selected points on top and the hovered one ringed, so it costs the selected
// points, not all N, in every panel. Everything is drawn with premultiplied alpha.
// Where WebGL itself runs in software (SwiftShader, llvmpipe: no GPU, or a headless
// browser), drawing a point costs about a microsecond, so the points of layers and
// selections are rasterised by this script instead (the same discs, a few pixels each,
// about 50 times faster there) and WebGL composites them; `#raster=gl` or `#raster=cpu`
// in the address chooses either.
(function () {
  'use strict';

  const manifest = JSON.parse(document.getElementById('manifest').textContent);
  const received = new Map();   // id -> {meta, bytes}
  const scripts = new Map();    // src -> Promise
  const $ = (id) => document.getElementById(id);
  const QUANT = 65535;
  const K = 10;

  function put(id, meta, b64) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    received.set(id, { meta, bytes });
  }

  function load(id, src) {
    if (received.has(id)) return Promise.resolve(received.get(id));
    if (!scripts.has(src)) {
      scripts.set(src, new Promise((resolve, reject) => {
        const el = document.createElement('script');
        el.src = src;
        el.onload = () => (received.has(id) ? resolve(received.get(id))
          : reject(new Error(src + ' does not hold ' + id + '; rebuild the explorer (repscope explore)')));
        el.onerror = () => reject(new Error('cannot read ' + src + '; rebuild the explorer (repscope explore)'));
        document.head.appendChild(el);
      }));
    }
    return scripts.get(src).then(() => received.get(id));
  }

  // ------------------------------------------------------------------ colours

  function rgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).concat(255); }

  // ------------------------------------------------------------------ WebGL

  const canvas = $('gl');
  const gl = canvas.getContext('webgl', { antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: true });
  const VERTEX = `
    attribute vec2 a_pos; attribute vec4 a_color;
    uniform vec3 u_view; uniform float u_size;
    varying vec4 v_color;
    void main() {
      gl_Position = vec4((a_pos - u_view.xy) * u_view.z, 0.0, 1.0);
      gl_PointSize = u_size;
      v_color = vec4(a_color.rgb * 0.9, 0.9);
    }`;
  const FRAGMENT = `
    precision mediump float;
    varying vec4 v_color; uniform float u_ring;
    void main() {
      vec2 d = gl_PointCoord - vec2(0.5);
      float r = dot(d, d);
      if (r > 0.25 || (u_ring > 0.5 && r < 0.1)) discard;
      gl_FragColor = v_color;
    }`;
  const QUAD_VERTEX = `
    attribute vec2 a_quad; varying vec2 v_uv;
    void main() { v_uv = a_quad * 0.5 + 0.5; gl_Position = vec4(a_quad, 0.0, 1.0); }`;
  const QUAD_FRAGMENT = `
    precision mediump float;
    varying vec2 v_uv; uniform sampler2D u_layer; uniform float u_fade;
    void main() {
      vec4 t = texture2D(u_layer, v_uv);
      gl_FragColor = u_fade > 0.5 ? vec4(mix(t.rgb, vec3(0.8) * t.a, 0.8), t.a) * 0.45 : t;
    }`;

  function program(vs, fs) {
    const p = gl.createProgram();
    for (const [type, source] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
      const s = gl.createShader(type);
      gl.shaderSource(s, source);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      gl.attachShader(p, s);
    }
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
    return p;
  }

  let points = null, quad = null, quadBuffer = null;
  const loc = {};
  if (gl) {
    gl.getExtension('OES_element_index_uint');
    points = program(VERTEX, FRAGMENT);
    quad = program(QUAD_VERTEX, QUAD_FRAGMENT);
    for (const a of ['a_pos', 'a_color']) loc[a] = gl.getAttribLocation(points, a);
    for (const u of ['u_view', 'u_size', 'u_ring']) loc[u] = gl.getUniformLocation(points, u);
    loc.a_quad = gl.getAttribLocation(quad, 'a_quad');
    loc.u_layer = gl.getUniformLocation(quad, 'u_layer');
    loc.u_fade = gl.getUniformLocation(quad, 'u_fade');
    quadBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, quadBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
  }

  // ------------------------------------------------------------------ state

  const state = {
    ds: null,            // the data set's manifest entry
    method: null, seed: null,
    labels: null,        // Uint8Array | Uint16Array
    selected: null,      // Uint8Array(N): 1 where selected
    selCount: 0,
    hidden: [],          // per class
    version: 0,          // bumped when the classes shown change: every layer is redrawn
    order: null,         // Uint32Array: draw order of the visible points
    visible: 0,
    selOrder: null,   // Uint32Array: draw order of the visible selected points
    selVisible: 0,
    perm: null,          // fixed shuffled order, so no class hides under another
    buffers: null,       // {color, order, selected}
    panels: [],
    chosen: null,        // [[network, name], ...]
    mode: 'pan',
    size: 3,
    hover: null,         // {panel, index}
  };
  const timings = { firstView: null, lastSelect: null };
  let measuring = false;
  let readyResolve;
  const ready = new Promise((resolve) => { readyResolve = resolve; });

  function status(text, kind) {  // kind: 'input' (a typing error, shown) or 'load' (also logged)
    const el = $('status');
    el.textContent = text;
    el.className = kind ? 'error' : '';
    if (kind === 'load') console.error('repscope explorer: ' + text);
  }

  function mulberry32(seed) {
    return function () {
      seed |= 0; seed = seed + 0x6D2B79F5 | 0;
      let t = Math.imul(seed ^ seed >>> 15, 1 | seed);
      t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t;
      return ((t ^ t >>> 14) >>> 0) / 4294967296;
    };
  }

  function decodeLabels(entry, item) {
    const b = item.bytes;
    return item.meta.dtype === 'uint16' ? new Uint16Array(b.buffer, b.byteOffset, b.length / 2) : b;
  }

  function embeddingKey(network, name) { return state.method + '/' + state.seed + '/' + network + '/' + name; }

  // ------------------------------------------------------------------ data set

  function openDataset(entry, item) {
    state.ds = entry;
    const n = entry.n;
    state.labels = decodeLabels(entry, item);
    state.selected = new Uint8Array(n);
    state.selCount = 0;
    state.hidden = entry.classes.map(() => false);
    state.order = new Uint32Array(n);
    state.selOrder = new Uint32Array(n);
    const rand = mulberry32(0);
    state.perm = new Uint32Array(n);
    for (let i = 0; i < n; i++) state.perm[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = state.perm[i]; state.perm[i] = state.perm[j]; state.perm[j] = t;
    }
    state.size = Math.max(1.5, Math.min(6, 600 / Math.sqrt(n)));
    $('size').value = state.size;
    if (gl) {
      if (state.buffers) for (const b of Object.values(state.buffers)) gl.deleteBuffer(b);
      const colours = entry.colours.map(rgb);  // the report's figures' colours, from the manifest
      const rgba = new Uint8Array(4 * n);
      for (let i = 0; i < n; i++) rgba.set(colours[state.labels[i]] || [0, 0, 0, 255], 4 * i);
      state.buffers = { color: gl.createBuffer(), order: gl.createBuffer(), selected: gl.createBuffer() };
      gl.bindBuffer(gl.ARRAY_BUFFER, state.buffers.color);
      gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.STATIC_DRAW);
      state.rgba = rgba;
      for (const b of [state.buffers.order, state.buffers.selected]) {
        gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, b);
        gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, state.order.byteLength, gl.DYNAMIC_DRAW);
      }
    }
    state.colours = entry.colours;
    rebuildOrder();
    drawLegend();
    drawSelection();
  }

  function upload(buffer, indices) {
    if (!gl) return;
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buffer);
    gl.bufferSubData(gl.ELEMENT_ARRAY_BUFFER, 0, indices);
  }

  function rebuildOrder() {  // the classes shown changed: every layer is redrawn
    const { perm, labels, hidden, order } = state;
    let k = 0;
    for (let j = 0; j < perm.length; j++) if (!hidden[labels[perm[j]]]) order[k++] = perm[j];
    state.visible = k;
    state.version++;
    upload(state.buffers && state.buffers.order, order.subarray(0, k));
    rebuildChosen();
  }

  function rebuildChosen() {  // the selection changed: only the selected points are drawn again
    const { order, selected, selOrder } = state;
    let k = 0;
    for (let j = 0; j < state.visible; j++) if (selected[order[j]]) selOrder[k++] = order[j];
    state.selVisible = k;
    state.selVersion = (state.selVersion || 0) + 1;
    upload(state.buffers && state.buffers.selected, selOrder.subarray(0, k));
  }

  // ------------------------------------------------------------------ panels

  function makePanels() {
    const ds = state.ds;
    const box = $('panels');
    for (const p of state.panels) release(p);
    box.textContent = '';
    state.panels = [];
    state.hover = null;
    const groups = ds.networks.map((net) => [net, state.chosen.filter(([n]) => n === net)]).filter(([, g]) => g.length);
    const cols = Math.min(6, Math.max(...groups.map(([, g]) => g.length)));
    for (const [network, members] of groups) {
      const section = document.createElement('section');
      section.className = 'network';
      section.innerHTML = '<h2></h2><div class="grid"></div>';
      section.querySelector('h2').textContent = network + ' network';
      const grid = section.querySelector('.grid');
      grid.style.setProperty('--cols', cols);
      for (const [, name] of members) {
        const info = ds.embeddings[embeddingKey(network, name)];
        const panel = { id: state.panels.length, network, name, info, data: null, buffer: null, layer: null,
          view: { cx: 0.5, cy: 0.5, z: 1 }, drawn: 0 };
        const el = document.createElement('div');
        el.className = 'panel';
        el.innerHTML = '<h3></h3><div class="plot"><svg></svg><div class="msg"></div></div>';
        el.querySelector('h3').textContent = name === 'original' ? 'input (original)' : name;
        if (info && info.dead) {  // every example one point: a dead filter, or a constant representation
          const word = name.includes('/filter') ? 'dead' : 'constant';
          el.querySelector('h3').insertAdjacentHTML('beforeend', ' <span class="dead">' + word + ': one point</span>');
        }
        el.dataset.network = network;
        el.dataset.name = name;
        panel.el = el;
        panel.plot = el.querySelector('.plot');
        panel.svg = el.querySelector('svg');
        panel.msg = el.querySelector('.msg');
        panel.msg.textContent = info ? 'loading' : 'not embedded';
        grid.appendChild(el);
        attachEvents(panel);
        state.panels.push(panel);
      }
      box.appendChild(section);
    }
    setMode(state.mode);
    state.opening = true;
    return Promise.all(state.panels.map(loadPanel)).finally(() => { state.opening = false; });
  }

  function holderKey(network, name) {  // the input is stored once, under the trained network
    return embeddingKey(name === 'original' ? 'trained' : network, name);
  }

  function prefetch(ds, panels) {  // start reading a view's files at once, beside its labels
    for (const [network, name] of panels) {
      const info = ds.embeddings[holderKey(network, name)];
      if (info) load(ds.name + '/' + holderKey(network, name), info.file).catch(() => null);
    }
  }

  async function loadPanel(panel) {
    if (!panel.info) return;
    const ds = state.ds;
    const id = ds.name + '/' + holderKey(panel.network, panel.name);
    const item = await load(id, panel.info.file).catch((err) => { status(err.message, 'load'); return null; });
    if (!state.panels.includes(panel)) return;  // a later view replaced this panel
    if (!item || item.meta.error) {
      panel.failed = true;
      panel.msg.textContent = item ? item.meta.error : 'cannot read ' + panel.info.file;
      return;
    }
    const b = item.bytes;
    panel.codes = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
    panel.meta = item.meta;
    if (gl) {
      panel.buffer = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, panel.buffer);
      gl.bufferData(gl.ARRAY_BUFFER, panel.codes, gl.STATIC_DRAW);
    }
    panel.data = true;
    panel.msg.textContent = '';
    if (!state.opening) scheduleRender();  // while a view opens, one frame when all its panels are in
  }

  // ------------------------------------------------------------------ drawing

  let frame = 0;
  function scheduleRender() { if (!frame) frame = requestAnimationFrame(render); }

  function viewScale(panel) { return 2 * 0.94 * panel.view.z; }

  function release(panel) {
    if (!gl) return;
    if (panel.buffer) gl.deleteBuffer(panel.buffer);
    if (panel.layer) { gl.deleteTexture(panel.layer.texture); if (panel.layer.fbo) gl.deleteFramebuffer(panel.layer.fbo); }
    if (panel.selLayer) gl.deleteTexture(panel.selLayer.texture);
    panel.buffer = panel.layer = panel.selLayer = null;
  }

  function usePoints(panel, size) {
    gl.useProgram(points);
    gl.disableVertexAttribArray(loc.a_quad);
    gl.bindBuffer(gl.ARRAY_BUFFER, state.buffers.color);
    gl.enableVertexAttribArray(loc.a_color);
    gl.vertexAttribPointer(loc.a_color, 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, panel.buffer);
    gl.enableVertexAttribArray(loc.a_pos);
    gl.vertexAttribPointer(loc.a_pos, 2, gl.UNSIGNED_SHORT, true, 0, 0);
    gl.uniform3f(loc.u_view, panel.view.cx, panel.view.cy, viewScale(panel));
    gl.uniform1f(loc.u_size, size);
    gl.uniform1f(loc.u_ring, 0);
  }

  function stamp(radius) {  // pixel offsets of a disc of this radius around a pixel centre
    const out = [], r = Math.max(0.5, radius), m = Math.ceil(r);
    for (let dy = -m; dy <= m; dy++) for (let dx = -m; dx <= m; dx++) if (dx * dx + dy * dy <= r * r) out.push(dx, dy);
    return out;
  }

  function rasterise(panel, indices, count, w, h, dpr) {  // premultiplied RGBA rows, bottom row first
    const image = new Uint8Array(w * h * 4);
    const offsets = stamp(state.size * dpr / 2), s = viewScale(panel), codes = panel.codes, rgba = state.rgba;
    const { cx, cy } = panel.view;
    for (let k = 0; k < count; k++) {
      const i = indices[k];
      const x = Math.floor(((codes[2 * i] / QUANT - cx) * s + 1) / 2 * w);
      const y = Math.floor(((codes[2 * i + 1] / QUANT - cy) * s + 1) / 2 * h);
      const r = rgba[4 * i] * 0.9, g = rgba[4 * i + 1] * 0.9, b = rgba[4 * i + 2] * 0.9;
      for (let j = 0; j < offsets.length; j += 2) {
        const xx = x + offsets[j], yy = y + offsets[j + 1];
        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
        const o = (yy * w + xx) * 4;
        image[o] = r + image[o] * 0.1; image[o + 1] = g + image[o + 1] * 0.1;
        image[o + 2] = b + image[o + 2] * 0.1; image[o + 3] = 229.5 + image[o + 3] * 0.1;
      }
    }
    return image;
  }

  function texture(w, h, pixels) {
    const t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, t);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST],
      [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
    return t;
  }

  function selectedLayer(panel, w, h, dpr) {  // the selected points in a texture (software rendering)
    const key = [panel.view.cx, panel.view.cy, panel.view.z, state.size, dpr, w, h, state.version, state.selVersion].join();
    if (panel.selLayer && panel.selLayer.key === key) return panel.selLayer;
    if (panel.selLayer) gl.deleteTexture(panel.selLayer.texture);
    const pixels = rasterise(panel, state.selOrder, state.selVisible, w, h, dpr);
    panel.selLayer = { key, texture: texture(w, h, pixels) };
    return panel.selLayer;
  }

  function drawTexture(t, fade) {  // a layer over the whole viewport, faded or not
    gl.useProgram(quad);
    gl.disableVertexAttribArray(loc.a_pos);
    gl.disableVertexAttribArray(loc.a_color);
    gl.bindBuffer(gl.ARRAY_BUFFER, quadBuffer);
    gl.enableVertexAttribArray(loc.a_quad);
    gl.vertexAttribPointer(loc.a_quad, 2, gl.FLOAT, false, 0, 0);
    gl.bindTexture(gl.TEXTURE_2D, t);
    gl.uniform1i(loc.u_layer, 0);
    gl.uniform1f(loc.u_fade, fade);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  function layerOf(panel, w, h, dpr) {  // the panel's points in a texture, redrawn only when stale
    const key = [panel.view.cx, panel.view.cy, panel.view.z, state.size, dpr, w, h, state.version].join();
    let layer = panel.layer;
    if (layer && layer.key === key) return layer;
    if (state.raster === 'cpu') {
      if (layer) { gl.deleteTexture(layer.texture); if (layer.fbo) gl.deleteFramebuffer(layer.fbo); }
      const pixels = rasterise(panel, state.order, state.visible, w, h, dpr);
      panel.layer = { w, h, key, texture: texture(w, h, pixels), fbo: null, drawn: state.visible };
      return panel.layer;
    }
    if (!layer || layer.w !== w || layer.h !== h) {
      if (layer) { gl.deleteTexture(layer.texture); gl.deleteFramebuffer(layer.fbo); }
      layer = panel.layer = { w, h, texture: texture(w, h, null), fbo: gl.createFramebuffer(), key: null };
      gl.bindFramebuffer(gl.FRAMEBUFFER, layer.fbo);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, layer.texture, 0);
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, layer.fbo);
    gl.disable(gl.SCISSOR_TEST);
    gl.viewport(0, 0, w, h);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    usePoints(panel, state.size * dpr);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, state.buffers.order);
    gl.drawElements(gl.POINTS, state.visible, gl.UNSIGNED_INT, 0);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    layer.key = key;
    layer.drawn = state.visible;
    return layer;
  }

  function render() {
    frame = 0;
    if (!gl || !state.buffers) return;
    const dpr = window.devicePixelRatio || 1;
    const width = Math.round(window.innerWidth * dpr), height = Math.round(window.innerHeight * dpr);
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
    const fade = state.selCount > 0 ? 1 : 0;
    const shown = [];
    for (const panel of state.panels) {  // layers first: they switch the framebuffer
      panel.drawn = 0;
      const r = panel.plot.getBoundingClientRect();
      if (!panel.data || r.bottom < 0 || r.top > window.innerHeight || r.right < 0 || r.left > window.innerWidth) continue;
      const x = Math.round(r.left * dpr), y = Math.round(height - r.bottom * dpr);
      const w = Math.round(r.width * dpr), h = Math.round(r.height * dpr);
      if (w < 1 || h < 1) continue;
      const layer = layerOf(panel, w, h, dpr);
      shown.push([panel, x, y, w, h, layer, state.raster === 'cpu' && state.selVisible ? selectedLayer(panel, w, h, dpr) : null]);
    }
    gl.disable(gl.SCISSOR_TEST);
    gl.viewport(0, 0, width, height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.SCISSOR_TEST);
    for (const [panel, x, y, w, h, layer, selLayer] of shown) {
      gl.viewport(x, y, w, h);
      gl.scissor(x, y, w, h);  // clipped to the canvas by WebGL itself
      drawTexture(layer.texture, fade);
      if (selLayer) {  // the selected examples, in full colour on top
        drawTexture(selLayer.texture, 0);
      }
      usePoints(panel, state.size * dpr);
      if (state.selVisible && !selLayer) {
        gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, state.buffers.selected);
        gl.drawElements(gl.POINTS, state.selVisible, gl.UNSIGNED_INT, 0);
      }
      if (state.hover) {  // the hovered example, ringed in every panel
        gl.disableVertexAttribArray(loc.a_color);
        gl.vertexAttrib4f(loc.a_color, 0.05, 0.05, 0.05, 1);
        gl.uniform1f(loc.u_size, Math.max(9, state.size * 3) * dpr);
        gl.uniform1f(loc.u_ring, 1);
        gl.drawArrays(gl.POINTS, state.hover.index, 1);
      }
      panel.drawn = layer.drawn;
    }
    if (measuring || timings.firstView === null) {  // wait for the pixels themselves (gl.finish may not)
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
    }
    if (timings.firstView === null && state.panels.length && state.panels.every((p) => p.data || !p.info || p.failed)) {
      timings.firstView = performance.now();
      readyResolve(timings.firstView);
    }
  }

  function warmUp() {  // compile every pipeline once (software renderers compile at first draw) while data load
    const probe = { id: -1, view: { cx: 0.5, cy: 0.5, z: 1 }, buffer: gl.createBuffer() };
    gl.bindBuffer(gl.ARRAY_BUFFER, probe.buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Uint16Array([32768, 32768]), gl.STATIC_DRAW);
    const saved = state.buffers;
    state.buffers = { color: gl.createBuffer(), order: gl.createBuffer() };
    gl.bindBuffer(gl.ARRAY_BUFFER, state.buffers.color);
    gl.bufferData(gl.ARRAY_BUFFER, new Uint8Array([0, 0, 0, 0]), gl.STATIC_DRAW);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, state.buffers.order);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, new Uint32Array([0]), gl.STATIC_DRAW);
    const visible = state.visible;
    state.visible = 1;
    const layer = state.raster === 'cpu' ? { texture: texture(2, 2, null), fbo: null } : layerOf(probe, 2, 2, 1);
    gl.viewport(0, 0, 2, 2);
    drawTexture(layer.texture, 1);
    usePoints(probe, 1);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, state.buffers.order);
    gl.drawElements(gl.POINTS, 1, gl.UNSIGNED_INT, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
    gl.deleteTexture(layer.texture);
    if (layer.fbo) gl.deleteFramebuffer(layer.fbo);
    for (const b of [probe.buffer, state.buffers.color, state.buffers.order]) gl.deleteBuffer(b);
    state.buffers = saved;
    state.visible = visible;
  }

  // ------------------------------------------------------------------ geometry

  function toUnit(panel, clientX, clientY) {
    const r = panel.plot.getBoundingClientRect();
    const s = viewScale(panel);
    const cx = (clientX - r.left) / r.width * 2 - 1, cy = 1 - (clientY - r.top) / r.height * 2;
    return [cx / s + panel.view.cx, cy / s + panel.view.cy];
  }

  function toScreen(panel, index) {
    const r = panel.plot.getBoundingClientRect();
    const s = viewScale(panel);
    const ux = panel.codes[2 * index] / QUANT, uy = panel.codes[2 * index + 1] / QUANT;
    const cx = (ux - panel.view.cx) * s, cy = (uy - panel.view.cy) * s;
    return [r.left + (cx + 1) / 2 * r.width, r.top + (1 - cy) / 2 * r.height];
  }

  function nearestVisible(panel, clientX, clientY, radius) {
    const r = panel.plot.getBoundingClientRect();
    const [ux, uy] = toUnit(panel, clientX, clientY);
    const perPixel = 2 / r.width / viewScale(panel);  // unit coordinates per CSS pixel
    let best = -1, bestD = (radius * perPixel) ** 2;
    const { order, visible } = state, codes = panel.codes;
    for (let k = 0; k < visible; k++) {  // in draw order: the topmost point wins a tie
      const i = order[k];
      const dx = codes[2 * i] / QUANT - ux, dy = codes[2 * i + 1] / QUANT - uy;
      const d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = i; }
    }
    return best;
  }

  function vote(panel, index) {  // the K nearest others in this embedding, ties to the smallest label
    const codes = panel.codes, n = state.ds.n;
    const x = codes[2 * index], y = codes[2 * index + 1];
    const dist = new Float64Array(K).fill(Infinity), who = new Int32Array(K).fill(-1);
    for (let i = 0; i < n; i++) {
      if (i === index) continue;
      const dx = codes[2 * i] - x, dy = codes[2 * i + 1] - y;
      const d = dx * dx + dy * dy;
      if (d >= dist[K - 1]) continue;
      let k = K - 1;
      while (k > 0 && dist[k - 1] > d) { dist[k] = dist[k - 1]; who[k] = who[k - 1]; k--; }
      dist[k] = d; who[k] = i;
    }
    const counts = new Map();
    for (const i of who) if (i >= 0) counts.set(state.labels[i], (counts.get(state.labels[i]) || 0) + 1);
    let winner = -1, top = 0;
    for (const [label, c] of counts) if (c > top || (c === top && label < winner)) { winner = label; top = c; }
    return { label: winner, count: top, of: who.filter((i) => i >= 0).length };
  }

  function inPolygon(x, y, poly) {
    let inside = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i], [xj, yj] = poly[j];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }

  function pointsIn(panel, polygon, box) {  // polygon in client coordinates; visible points only
    const poly = polygon.map(([x, y]) => toUnit(panel, x, y));
    const xs = poly.map((p) => p[0]), ys = poly.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const out = [];
    const codes = panel.codes;
    for (let k = 0; k < state.visible; k++) {
      const i = state.order[k];
      const ux = codes[2 * i] / QUANT, uy = codes[2 * i + 1] / QUANT;
      if (ux < x0 || ux > x1 || uy < y0 || uy > y1) continue;
      if (box || inPolygon(ux, uy, poly)) out.push(i);
    }
    return out.sort((a, b) => a - b);
  }

  // ------------------------------------------------------------------ selection

  function setSelection(indices) {
    const t0 = performance.now();
    state.selected.fill(0);
    let count = 0;
    for (const i of indices) {
      if (i >= 0 && i < state.ds.n && !state.selected[i]) { state.selected[i] = 1; count++; }
    }
    state.selCount = count;
    rebuildChosen();
    render();
    const t1 = performance.now();
    drawSelection();
    return t1 - t0;
  }

  function selectedIndices() {
    const out = [];
    for (let i = 0; i < state.selected.length; i++) if (state.selected[i]) out.push(i);
    return out;
  }

  function thumb(index, scale) {
    const img = state.ds.image;
    if (!img) return null;
    const el = document.createElement('div');
    el.className = 'thumb';
    const sheet = Math.floor(index / img.per_sheet), cell = index % img.per_sheet;
    const col = cell % img.columns, row = Math.floor(cell / img.columns);
    const w = img.width * scale, h = img.height * scale;
    el.style.width = w + 'px';
    el.style.height = h + 'px';
    el.style.backgroundImage = 'url("' + img.sheets[sheet] + '")';
    el.style.backgroundSize = (img.columns * w) + 'px auto';
    el.style.backgroundPosition = (-col * w) + 'px ' + (-row * h) + 'px';
    el.dataset.sheet = img.sheets[sheet];
    el.dataset.cell = cell;
    return el;
  }

  function drawSelection() {
    const ds = state.ds, n = state.selCount;
    $('sel-count').textContent = n ? n + ' example' + (n > 1 ? 's' : '') : 'none';
    const mix = $('sel-mix'), thumbs = $('sel-thumbs');
    mix.textContent = '';
    thumbs.textContent = '';
    if (!n) return;
    const counts = new Array(ds.classes.length).fill(0);
    const picked = [];
    for (let i = 0; i < state.selected.length; i++) {
      if (!state.selected[i]) continue;
      counts[state.labels[i]]++;
      if (picked.length < 60) picked.push(i);
    }
    const top = Math.max(...counts);
    counts.map((c, k) => [c, k]).filter(([c]) => c > 0).sort((a, b) => b[0] - a[0]).forEach(([c, k]) => {
      const name = document.createElement('span');
      name.textContent = ds.classes[k];
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.style.background = state.colours[k];
      bar.style.width = (100 * c / top) + '%';
      const num = document.createElement('span');
      num.className = 'count';
      num.textContent = c + ' (' + Math.round(100 * c / n) + ' %)';
      mix.append(name, bar, num);
    });
    for (const i of picked) {
      const t = thumb(i, 1);
      if (t) { t.title = '#' + i + ': ' + ds.classes[state.labels[i]]; thumbs.appendChild(t); }
    }
  }

  function parseIndices(text) {
    const out = [];
    for (const part of text.split(/[\s,;]+/).filter(Boolean)) {
      const m = part.match(/^#?(\d+)(?:-(\d+))?$/);
      if (!m) throw new Error('"' + part + '" is not an index or a range like 200-250');
      const a = +m[1], b = m[2] === undefined ? a : +m[2];
      const last = Math.min(Math.max(a, b), state.ds.n - 1);  // indices past N select nothing
      for (let i = Math.min(a, b); i <= last; i++) out.push(i);
    }
    return out;
  }

  // ------------------------------------------------------------------ legend and hover

  function drawLegend() {
    const box = $('legend');
    box.textContent = '';
    state.ds.classes.forEach((name, k) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.class = k;
      b.innerHTML = '<span class="swatch"></span><span class="name"></span><span class="count"></span>';
      b.querySelector('.swatch').style.background = state.colours[k];
      b.querySelector('.name').textContent = name;
      b.title = name;  // the whole name, where the legend cuts it short
      b.querySelector('.count').textContent = state.ds.counts[k];
      b.classList.toggle('off', state.hidden[k]);
      b.addEventListener('click', () => toggleClass(k));
      box.appendChild(b);
    });
  }

  function toggleClass(k, hide) {
    state.hidden[k] = hide === undefined ? !state.hidden[k] : !!hide;
    rebuildOrder();
    drawLegend();
    render();
  }

  function showTooltip(panel, index, clientX, clientY) {
    const tip = $('tooltip');
    if (index < 0) { tip.hidden = true; if (state.hover) { state.hover = null; scheduleRender(); } return; }
    const ds = state.ds, label = state.labels[index];
    const v = vote(panel, index);
    tip.textContent = '';
    const t = thumb(index, Math.max(1, Math.floor(84 / (ds.image ? ds.image.height : 84))));
    if (t) tip.appendChild(t);
    const line = (html) => { const d = document.createElement('div'); d.innerHTML = html; tip.appendChild(d); return d; };
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
    line('<strong>#' + index + '</strong> &middot; label ' + label + ': <strong class="class-name">' + esc(ds.classes[label]) + '</strong>');
    line(v.of === 0 ? K + '-NN vote: none (no other point)' : K + '-NN vote: ' + esc(ds.classes[v.label]) + ' ('
      + v.count + ' of ' + v.of + ')' + (v.label === label ? '' : ' <strong style="color:#b42318">outlier</strong>'));
    line('<span class="muted">' + esc(panel.network) + ' ' + esc(panel.name) + '</span>');
    tip.dataset.index = index;
    tip.dataset.label = label;
    tip.dataset.vote = v.label;
    tip.hidden = false;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(window.innerWidth - w - 4, clientX + 14) + 'px';
    tip.style.top = Math.min(window.innerHeight - h - 4, clientY + 14) + 'px';
    if (!state.hover || state.hover.index !== index) { state.hover = { panel: panel.id, index }; scheduleRender(); }
  }

  // ------------------------------------------------------------------ events

  function setMode(mode) {
    state.mode = mode;
    for (const b of document.querySelectorAll('.modes button')) b.classList.toggle('on', b.dataset.mode === mode);
    for (const p of state.panels) p.plot.classList.toggle('pan', mode === 'pan');
  }

  function attachEvents(panel) {
    const plot = panel.plot;
    let drag = null;
    plot.addEventListener('wheel', (e) => {
      if (!panel.data) return;
      e.preventDefault();
      const [ux, uy] = toUnit(panel, e.clientX, e.clientY);
      const f = Math.exp(-e.deltaY * 0.0015);
      const v = panel.view;
      v.z = Math.min(500, Math.max(0.2, v.z * f));
      const [ux2, uy2] = toUnit(panel, e.clientX, e.clientY);
      v.cx += ux - ux2; v.cy += uy - uy2;
      scheduleRender();
    }, { passive: false });
    plot.addEventListener('dblclick', () => { panel.view = { cx: 0.5, cy: 0.5, z: 1 }; scheduleRender(); });
    plot.addEventListener('pointerdown', (e) => {
      if (!panel.data || e.button !== 0) return;
      const kind = e.shiftKey ? 'box' : e.altKey ? 'lasso' : state.mode;
      drag = { kind, x: e.clientX, y: e.clientY, points: [[e.clientX, e.clientY]], view: { ...panel.view } };
      plot.setPointerCapture(e.pointerId);
      showTooltip(panel, -1);
    });
    plot.addEventListener('pointermove', (e) => {
      if (!panel.data) return;
      if (!drag) { showTooltip(panel, nearestVisible(panel, e.clientX, e.clientY, 8), e.clientX, e.clientY); return; }
      if (drag.kind === 'pan') {
        const r = plot.getBoundingClientRect(), s = viewScale(panel);
        panel.view.cx = drag.view.cx - (e.clientX - drag.x) / r.width * 2 / s;
        panel.view.cy = drag.view.cy + (e.clientY - drag.y) / r.height * 2 / s;
        scheduleRender();
        return;
      }
      drag.points.push([e.clientX, e.clientY]);
      outline(panel, drag);
    });
    const finish = (e) => {
      if (!drag) return;
      const d = drag;
      drag = null;
      panel.svg.textContent = '';
      if (d.kind === 'pan') return;
      d.points.push([e.clientX, e.clientY]);
      const moved = d.points.some(([x, y]) => Math.abs(x - d.x) + Math.abs(y - d.y) > 3);  // a lasso may end where it began
      if (!moved) { setSelection([]); return; }  // a click clears the selection
      if (d.kind === 'box') select(panel, corners(d.x, d.y, e.clientX, e.clientY), true);
      else select(panel, d.points, false);
    };
    plot.addEventListener('pointerup', finish);
    plot.addEventListener('pointercancel', () => { drag = null; panel.svg.textContent = ''; });
    plot.addEventListener('pointerleave', () => { if (!drag) showTooltip(panel, -1); });
  }

  function corners(x0, y0, x1, y1) { return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]; }

  function select(panel, polygon, box) {
    const t0 = performance.now();
    const found = pointsIn(panel, polygon, box);
    const update = setSelection(found);
    timings.lastSelect = { points: found.length, hitTest: performance.now() - t0 - update, update,
      total: performance.now() - t0 };
    return found;
  }

  function outline(panel, drag) {
    const r = panel.plot.getBoundingClientRect();
    const pts = drag.kind === 'box' ? corners(drag.x, drag.y, drag.points.at(-1)[0], drag.points.at(-1)[1]) : drag.points;
    panel.svg.innerHTML = '<polygon fill="rgba(11,92,173,.08)" stroke="#0b5cad" stroke-width="1.5" points="'
      + pts.map(([x, y]) => (x - r.left) + ',' + (y - r.top)).join(' ') + '"></polygon>';
  }

  // ------------------------------------------------------------------ controls

  function fillSelect(id, values, value) {
    const el = $(id);
    el.textContent = '';
    for (const v of values) {
      const o = document.createElement('option');
      o.value = o.textContent = v;
      el.appendChild(o);
    }
    el.value = value;
  }

  function drawChooser() {
    const ds = state.ds, table = $('panel-table');
    table.innerHTML = '<tr><th>representation</th>' + ds.networks.map((n) => '<th>' + n + '</th>').join('') + '</tr>';
    for (const rep of ds.representations) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.textContent = rep.name + (rep.in_study ? '' : ' (whole layer)');
      tr.appendChild(td);
      for (const network of ds.networks) {
        const cell = document.createElement('td');
        const has = ds.embeddings[embeddingKey(network, rep.name)];
        if (has) {
          const box = document.createElement('input');
          box.type = 'checkbox';
          box.checked = state.chosen.some(([n, r]) => n === network && r === rep.name);
          box.addEventListener('change', () => {
            state.chosen = state.chosen.filter(([n, r]) => !(n === network && r === rep.name));
            if (box.checked) state.chosen.push([network, rep.name]);
            const rank = (n, r) => ds.networks.indexOf(n) * 1e4 + ds.representations.findIndex((x) => x.name === r);
            state.chosen.sort((a, b) => rank(...a) - rank(...b));
            makePanels();
          });
          cell.appendChild(box);
        }
        tr.appendChild(cell);
      }
      table.appendChild(tr);
    }
  }

  function describe() {
    const ds = state.ds;
    status(ds.name + ', ' + state.method + ', seed ' + state.seed + ': N = ' + ds.n + ', ' + state.panels.length + ' panels');
  }

  async function show(datasetName, method, seed, keepSelection) {  // false where a later call took over
    const call = state.calls = (state.calls || 0) + 1;
    const ds = manifest.datasets.find((d) => d.name === datasetName) || manifest.datasets[0];
    const changed = ds !== state.ds;
    if (changed) {
      prefetch(ds, ds.defaults);
      const labels = await load(ds.name + '/labels', ds.labels);
      if (call !== state.calls) return false;
      openDataset(ds, labels);
      state.chosen = ds.defaults.slice();
    }
    state.method = ds.methods.includes(method) ? method : ds.methods[0];
    state.seed = ds.seeds.map(String).includes(String(seed)) ? +seed : ds.seeds[0];
    fillSelect('dataset', manifest.datasets.map((d) => d.name), ds.name);
    fillSelect('method', ds.methods, state.method);
    fillSelect('seed', ds.seeds, state.seed);
    drawChooser();
    if (!changed && !keepSelection) setSelection([]);
    status('loading ' + state.chosen.length + ' panels');
    await makePanels();
    if (call !== state.calls) return false;
    describe();
    render();
    return true;
  }

  function readHash() {  // key=value pairs joined by '&', each part percent-encoded
    const out = { unread: [] };
    for (const part of location.hash.slice(1).split('&')) {
      const at = part.indexOf('=');
      if (at <= 0) continue;
      try { out[decodeURIComponent(part.slice(0, at))] = decodeURIComponent(part.slice(at + 1)); } catch (err) {
        out.unread.push(part);
      }
    }
    return out;
  }

  async function applyHash() {
    const h = readHash();
    const ds = manifest.datasets.find((d) => d.name === h.dataset) || state.ds || manifest.datasets[0];
    if (!await show(ds.name, h.method || state.method, h.seed || state.seed, true)) return;  // a later view won
    if (h.unread.length) status('cannot read ' + h.unread.map((u) => '"' + u + '"').join(', ') + ' in the address', 'input');
    if (h.select) {
      try { setSelection(parseIndices(h.select)); } catch (err) { status(err.message, 'input'); }
    }
  }

  $('dataset').addEventListener('change', (e) => show(e.target.value, state.method, state.seed));
  $('method').addEventListener('change', (e) => show(state.ds.name, e.target.value, state.seed, true));
  $('seed').addEventListener('change', (e) => show(state.ds.name, state.method, e.target.value, true));
  $('size').addEventListener('input', (e) => { state.size = +e.target.value; scheduleRender(); });
  for (const b of document.querySelectorAll('.modes button')) b.addEventListener('click', () => setMode(b.dataset.mode));
  $('by-index').addEventListener('submit', (e) => {
    e.preventDefault();
    try { setSelection(parseIndices($('indices').value)); describe(); } catch (err) { status(err.message, 'input'); }
  });
  $('clear').addEventListener('click', () => setSelection([]));
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') setSelection([]); });
  window.addEventListener('resize', scheduleRender);
  window.addEventListener('scroll', scheduleRender, { passive: true });
  window.addEventListener('hashchange', applyHash);

  // What tests and benchmarks drive (and a console user may call).
  window.repscope = {
    put, ready, timings, state,
    get measuring() { return measuring; },
    set measuring(v) { measuring = !!v; },
    panels: () => state.panels.map((p) => {
      const r = p.plot.getBoundingClientRect();
      return { id: p.id, network: p.network, name: p.name, loaded: !!p.data, drawn: p.drawn,
        rect: [r.left, r.top, r.width, r.height] };
    }),
    screenPosition: (panel, index) => toScreen(state.panels[panel], index),
    selection: selectedIndices,
    select: (indices) => setSelection(indices),
    selectBox: (panel, x0, y0, x1, y1) => select(state.panels[panel], corners(x0, y0, x1, y1), true),
    toggleClass,
    render,
    vote: (panel, index) => vote(state.panels[panel], index),
    pixel: (x, y) => {  // RGBA of the canvas at client (x, y), as drawn now
      render();
      const dpr = window.devicePixelRatio || 1, out = new Uint8Array(4);
      gl.readPixels(Math.floor(x * dpr), canvas.height - 1 - Math.floor(y * dpr), 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, out);
      return Array.from(out);
    },
    show,
  };

  if (gl) {
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    state.renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    const asked = readHash().raster;
    state.raster = asked === 'gl' || asked === 'cpu' ? asked
      : /swiftshader|llvmpipe|softpipe|software/i.test(state.renderer) ? 'cpu' : 'gl';
  }
  if (!gl) {
    status('this browser gives no WebGL context; the explorer needs WebGL', 'load');
  } else if (!manifest.datasets.length) {
    status('this run has no embeddings to explore', 'load');
  } else {
    const opening = applyHash();
    warmUp();
    opening.catch((err) => status(err.message, 'load'));
  }
})();
