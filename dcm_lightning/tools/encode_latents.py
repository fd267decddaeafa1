"""``python -m dcm_lightning encode-latents``: a folder of captioned videos → the pre-encoded latent
folder the real configs train from (``data.init_args.latents_dir``, ``source: latents``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from dcm_lightning.conditioning import TextCondition
from dcm_lightning.data.latent_folder import write_part
from dcm_lightning.errors import UserError
from dcm_lightning.media import read_clip
from dcm_lightning.teachers.pretrained import ADAPTERS, load_codec, pipeline_class
from dcm_lightning.tools.options import DTYPES, Ranks, add_video_options, video_of

TEXT_BATCH = 8  # captions encoded together


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcm_lightning encode-latents",
        description="Encode a folder of videos with captions into the latent folder a real config trains from: "
        "VIDEOS/metadata.jsonl names each video and its caption, one JSON object per line "
        '({"file_name": "clip.mp4", "text": "a red cat runs in snow"}, the convention of Hugging Face '
        "video/image folders). Each video's first F frames are resized to cover H×W and center-cropped, then "
        "encoded by the pipeline's VAE (the posterior mean, scaled as the pipeline scales latents); each caption "
        "by its text encoders (embeddings, mask and, for HunyuanVideo, the pooled CLIP vector). Written as "
        "OUT/part-*.safetensors of --part-size videos each. An interrupted run resumes at the first missing "
        "part; under torchrun the parts are shared among the ranks. Unreadable or too-short videos are named "
        "and skipped, with a count at the end.",
    )
    parser.add_argument("--teacher", required=True, help="the teacher's diffusers pipeline folder (text encoders, VAE)")
    parser.add_argument("--videos", required=True, help="the folder of videos with its metadata.jsonl")
    parser.add_argument(
        "--out", default=None, help="the latent folder to write (default: the config's data.init_args.latents_dir)"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a real experiment config (e.g. configs/seme_wan.yaml): its teacher's num_frames/height/width "
        "and its latents_dir; the options below override it",
    )
    add_video_options(parser)
    parser.add_argument("--part-size", type=int, default=64, help="videos per part file (default 64)")
    parser.add_argument(
        "--device", default=None, help="where the VAE and text encoders run (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="bfloat16",
        help="the VAE's and text encoders' precision, and the stored latents' (default bfloat16)",
    )
    return parser


def read_metadata(folder: Path) -> list[dict]:
    """The ``metadata.jsonl`` entries, each checked to name a file and give a caption."""
    index = folder / "metadata.jsonl"
    if not index.is_file():
        raise UserError(f'{folder} has no metadata.jsonl (one {{"file_name": …, "text": …}} object per line).')
    entries = []
    for number, line in enumerate(index.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{index} line {number} is not JSON.") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str) or "text" not in entry:
            raise UserError(f'{index} line {number} needs a "file_name" and a "text".')
        entries.append({"file_name": entry["file_name"], "text": str(entry["text"])})
    if not entries:
        raise UserError(f"{index} lists no videos.")
    return entries


def video_settings(args: argparse.Namespace, folder: Path) -> tuple[dict[str, int], str | None]:
    """Frames, height and width (the options, else the config's teacher, else the pipeline's own) and
    the config's latents_dir."""
    teacher, latents_dir = {}, None
    if args.config is not None:
        config = yaml.safe_load(Path(args.config).read_text()) or {}
        teacher = ((config.get("model") or {}).get("init_args") or {}).get("teacher") or {}
        if not isinstance(teacher, dict):
            raise UserError(f"{args.config} names no real teacher (model.init_args.teacher with num_frames …).")
        latents_dir = ((config.get("data") or {}).get("init_args") or {}).get("latents_dir")
    native = ADAPTERS[pipeline_class(folder)].native_video(folder)
    video = {k: teacher.get(k, native[k]) for k in native} | video_of(args)
    return video, latents_dir


def main(argv: Sequence[str]) -> None:
    args = build_parser().parse_args(argv)
    ranks = Ranks.of(args)
    rank, world_size = ranks.rank, ranks.world_size
    folder, videos = Path(args.teacher), Path(args.videos)
    if args.part_size < 1:
        raise UserError(f"--part-size must be at least 1, got {args.part_size}.")
    video, latents_dir = video_settings(args, folder)
    out = Path(args.out or latents_dir or "")
    if not (args.out or latents_dir):
        raise UserError("say where the latents go: --out, or a --config with data.init_args.latents_dir.")
    entries = read_metadata(videos)
    out.mkdir(parents=True, exist_ok=True)
    parts = range(0, len(entries), args.part_size)
    mine = [k for k in range(rank, len(parts), world_size) if not (out / f"part-{k:05d}.json").is_file()]
    if mine:
        codec = load_codec(folder, args.dtype).to(ranks.device)
        dtype = getattr(torch, args.dtype)
        bar = tqdm(total=sum(len(entries[parts[k] : parts[k] + args.part_size]) for k in mine), unit="video")
        bar.set_description(f"encoding latents (rank {rank})" if world_size > 1 else "encoding latents")
        for k in mine:
            encode_part(k, entries[parts[k] : parts[k] + args.part_size], videos, out, video, codec, dtype, bar)
        bar.close()
    with ranks.process_group() as barrier:
        barrier()  # every rank's parts are written
    if rank == 0:
        report(out, len(parts), len(entries), video)


def encode_part(number, entries, videos: Path, out: Path, video: dict, codec, dtype, bar) -> None:
    """Read, encode and write part ``number``; its record (written last) names what was skipped."""
    latents, texts, files, skipped = [], [], [], {}
    for entry in entries:
        path = videos / entry["file_name"]
        try:
            clip = read_clip(path, video["num_frames"], video["height"], video["width"])
        except Exception as error:  # a corrupt, unreadable, missing or too-short video: named, skipped
            skipped[entry["file_name"]] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            bar.update(1)
            continue
        latents.append(codec.encode_videos(clip[None].to(dtype)).to(dtype).cpu())
        texts.append(entry["text"])
        files.append(entry["file_name"])
        bar.update(1)
    record = {"files": files, "skipped": skipped, "video": video}
    if files:
        conditions = [codec.encode(texts[i : i + TEXT_BATCH]).to("cpu") for i in range(0, len(texts), TEXT_BATCH)]
        condition = TextCondition(
            torch.cat([c.embeds for c in conditions]).to(dtype),
            torch.cat([c.mask for c in conditions]),
            None if conditions[0].pooled is None else torch.cat([c.pooled for c in conditions]).to(dtype),
        )
        write_part(out / f"part-{number:05d}.safetensors", torch.cat(latents), condition, {"files": json.dumps(files)})
    (out / f"part-{number:05d}.json").write_text(json.dumps(record, indent=1) + "\n")


def report(out: Path, num_parts: int, num_videos: int, video: dict) -> None:
    records = [json.loads((out / f"part-{k:05d}.json").read_text()) for k in range(num_parts)]
    skipped = {name: why for record in records for name, why in record["skipped"].items()}
    encoded = sum(len(record["files"]) for record in records)
    size = f"{video['num_frames']} frames of {video['height']}×{video['width']}"
    print(f"encoded {encoded} of {num_videos} videos ({size}) into {out}/")
    if skipped:
        print(f"skipped {len(skipped)} video(s):")
        for name, why in skipped.items():
            print(f"  {name}: {why}")
