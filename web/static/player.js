// Playback: HLS with hls.js (native HLS where the browser has it), or DASH
// with Shaka Player (loaded as a classic script: `window.shaka`). Both
// have a quality menu, and pass every request's URL through `rewrite`, so
// a fresh playback token replaces an expiring one mid-film.
import Hls from "/static/vendor/hls.mjs";

export class Player {
  constructor(video, quality, onFatal) {
    this.video = video;
    this.quality = quality;
    this.onFatal = onFatal;
    quality.addEventListener("change", () => this.choose(Number(quality.value)));
  }

  /** Plays `src` ("hls" or "dash"); `rewrite(url)` gives the URL each request really goes to. */
  async play(src, format = "hls", rewrite = (url) => url) {
    this.stop();
    if (format === "dash") return this.playDash(src, rewrite);
    if (Hls.isSupported()) {
      const hls = new Hls({
        // Opening the request here is how hls.js lets the URL change.
        xhrSetup: (xhr, url) => xhr.open("GET", rewrite(url), true),
      });
      hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) =>
        this.fillQualities(data.levels.map((level) => level.height)),
      );
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (data.fatal) this.onFatal(data);
      });
      hls.loadSource(rewrite(src));
      hls.attachMedia(this.video);
      this.hls = hls;
    } else if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
      this.video.src = rewrite(src);
    } else {
      this.onFatal({ details: "this browser plays neither HLS nor MSE" });
      return;
    }
    this.start();
  }

  async playDash(src, rewrite) {
    const shaka = window.shaka;
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) {
      this.onFatal({ details: "this browser cannot play DASH" });
      return;
    }
    const player = new shaka.Player();
    await player.attach(this.video);
    player.getNetworkingEngine().registerRequestFilter((_type, request) => {
      request.uris = request.uris.map(rewrite);
    });
    player.addEventListener("error", (event) => this.onFatal({ details: `DASH: ${event.detail?.code}` }));
    this.shaka = player;
    try {
      await player.load(rewrite(src));
    } catch (e) {
      this.onFatal({ details: `DASH: ${e.code ?? e.message}` });
      return;
    }
    this.tracks = player.getVariantTracks().sort((a, b) => a.height - b.height);
    this.fillQualities(this.tracks.map((t) => t.height));
    this.start();
  }

  start() {
    this.video.play().catch(() => {
      // Autoplay refused: the viewer presses play.
    });
  }

  /** A rendition by menu index, or -1 for automatic. */
  choose(index) {
    if (this.hls) {
      this.hls.currentLevel = index;
    } else if (this.shaka) {
      this.shaka.configure({ abr: { enabled: index < 0 } });
      if (index >= 0) this.shaka.selectVariantTrack(this.tracks[index], true);
    }
  }

  fillQualities(heights) {
    this.quality.replaceChildren(new Option("Auto", "-1"));
    heights.forEach((height, index) => {
      this.quality.append(new Option(`${height}p`, String(index)));
    });
  }

  stop() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = undefined;
    }
    if (this.shaka) {
      this.shaka.destroy();
      this.shaka = undefined;
    }
    this.video.removeAttribute("src");
    this.video.load();
  }
}
