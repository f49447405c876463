"""Kie.ai generation (images, video, audio) as flowgram actions."""
