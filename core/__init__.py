"""The platform-neutral conversation core: messages, images, history policy, queue and engine."""
